"""`entrodrop serve`: the dashboard's command, added to the library's CLI through the
`entrodrop.commands` entry point group (pyproject.toml), so the library never imports the app."""

from __future__ import annotations

from typing import Annotated

import typer

from app.security import is_loopback


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def serve(
    host: Annotated[str, typer.Option(help="Address to bind; non-loopback needs a token.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
    model: Annotated[
        str, typer.Option("--model", "-m", help="'default', a local folder, a hub id or run:<id>.")
    ] = "default",
    token: Annotated[
        str | None,
        typer.Option(help="Access token (or ENTRODROP_TOKEN).", envvar="ENTRODROP_TOKEN"),
    ] = None,
) -> None:
    """Run the dashboard (http://HOST:PORT); the model loads in the background."""
    import uvicorn

    # The home is checked before the app (and torch) is imported: on a full disk even importing
    # torch fails (no usable temporary folder), and the user must read why, not a traceback.
    from app.home_lock import HomeLocked, HomeUnusable, check_home, hold_home
    from app.runs.storage import StorageUnusable, check_database
    from entrodrop.paths import home_dir

    if not is_loopback(host) and not token:
        _fail(f"binding {host} exposes the dashboard: set ENTRODROP_TOKEN (or --token) first")
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
