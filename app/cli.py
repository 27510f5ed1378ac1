"""`entrodrop serve`: the dashboard's command, added to the library's CLI through the
`entrodrop.commands` entry point group (pyproject.toml), so the library never imports the app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _token(ctx: typer.Context, token_file: Path | None, token: str | None) -> str | None:
    """The access token from --token-file, else ENTRODROP_TOKEN or --token (which warns: any
    local user sees a command line in `ps`)."""
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read the token file {token_file}: {exc}")
        if not text:
            _fail(f"the token file {token_file} is empty")
        if token_file.stat().st_mode & 0o077:
            typer.secho(
                f"warning: {token_file} can be read by other users; chmod 600 it",
                fg=typer.colors.YELLOW,
                err=True,
            )
        return text
    source = ctx.get_parameter_source("token")
    if token and source is not None and source.name == "COMMANDLINE":
        typer.secho(
            "warning: --token is visible to every local user (ps, /proc); use ENTRODROP_TOKEN "
            "or --token-file instead",
            fg=typer.colors.YELLOW,
            err=True,
        )
    return token


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind; non-loopback needs a token.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
    model: Annotated[
        str, typer.Option("--model", "-m", help="'default', a local folder, a hub id or run:<id>.")
    ] = "default",
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="Read the access token from this file (keep it mode 600).",
            envvar="ENTRODROP_TOKEN_FILE",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Access token. Prefer ENTRODROP_TOKEN or --token-file: a flag is visible to "
            "every local user in `ps`.",
            envvar="ENTRODROP_TOKEN",
        ),
    ] = None,
) -> None:
    """Run the dashboard (http://HOST:PORT); the model loads in the background."""
    import uvicorn

    # The home is checked before the app (and torch) is imported: on a full disk even importing
    # torch fails (no usable temporary folder), and the user must read why, not a traceback.
    from app.home_lock import HomeLocked, HomeUnusable, check_home, hold_home
    from app.runs.storage import StorageUnusable, check_database
    from entrodrop.network import is_loopback
    from entrodrop.paths import home_dir

    token = _token(ctx, token_file, token)
    if not is_loopback(host) and not token:
        _fail(f"binding {host} exposes the dashboard: set ENTRODROP_TOKEN (or --token-file) first")
    home = home_dir()
    try:
        check_home(home)
        hold_home(home, host, port)  # a second server on this home stops here, touching no run
        check_database(home / "entrodrop.db")
    except (HomeUnusable, HomeLocked, StorageUnusable) as exc:
        _fail(str(exc))
    from app.main import create_app
    from app.settings import Settings

    settings = Settings(host=host, port=port, model=model, token=token, home=home)
    typer.echo(f"EntroDrop Studio on http://{host}:{port}  (home: {home}, model: {model})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
