"""The `entrodrop` command line: serve the dashboard, score text, train, prepare the default model."""

from __future__ import annotations

import ipaddress
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="EntroDrop Studio: per-token entropy, entropy-guided token dropout, fine-tuning.",
    no_args_is_help=True,
    add_completion=False,
)

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="'default', a local folder, a hub id or run:<id>.")
]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (the only ones served without a token)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; non-loopback needs a token.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
    model: ModelOpt = "default",
    token: Annotated[
        str | None,
        typer.Option(help="Access token (or ENTRODROP_TOKEN).", envvar="ENTRODROP_TOKEN"),
    ] = None,
) -> None:
    """Run the dashboard (http://HOST:PORT); the model loads in the background."""
    import uvicorn

    from app.main import create_app
    from app.settings import Settings
    from entrodrop.paths import home_dir

    if not is_loopback(host) and not token:
        _fail(f"binding {host} exposes the dashboard: set ENTRODROP_TOKEN (or --token) first")
    from app.main import HomeUnusable, check_home
    from app.storage import StorageUnusable, check_database

    home = home_dir()
    try:
        check_home(home)
        check_database(home / "entrodrop.db")
    except (HomeUnusable, StorageUnusable) as exc:
        _fail(str(exc))
    settings = Settings(host=host, port=port, model=model, token=token, home=home)
    typer.echo(f"EntroDrop Studio on http://{host}:{port}  (home: {home}, model: {model})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def _entropy_colour(entropy: float | None, max_entropy: float) -> str:
    if entropy is None:
        return "dim"
    x = min(1.0, entropy / max(max_entropy, 1e-6))
    # low entropy (predictable) -> blue, high -> red, like the dashboard's legend ends
    return (
        "blue"
        if x < 0.2
        else "cyan"
        if x < 0.4
        else "green"
        if x < 0.6
        else "yellow"
        if x < 0.8
        else "red"
    )


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    tokens = result["tokens"]
    top_entropy = max([t["entropy"] for t in tokens if t["entropy"] is not None] or [1.0])
    table = Table(title=f"{result['model']}: {result['n_tokens']} tokens (nats)")
    for col in ("#", "token", "entropy", "surprisal", "prob", "rank", "top alternatives"):
        table.add_column(
            col, justify="right" if col in ("#", "entropy", "surprisal", "rank") else "left"
        )
    for t in tokens:
        colour = _entropy_colour(t["entropy"], top_entropy)
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        alts = ", ".join(f"{a['text']!r} {a['prob']:.2f}" for a in t["top"][:3])
        table.add_row(
            str(t["index"]),
            repr(t["text"]),
            f"[{colour}]{fmt(t['entropy'], '.2f')}[/]",
            fmt(t["surprisal"], ".2f"),
            fmt(t["prob"], ".3g"),
            fmt(t["rank"], "d"),
            alts,
            style=None,
        )
    console.print(table)
    s = result["summary"]
    ppl = s["perplexity"]
    console.print(
        f"mean entropy {s['mean_entropy'] or 0:.3f} nats, mean surprisal "
        f"{s['mean_surprisal'] or 0:.3f} nats, perplexity {ppl if ppl is None else round(ppl, 2)}"
    )


@app.command()
def score(
    text: Annotated[str | None, typer.Argument(help="Text to score (or use --file).")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the text from a file.")
    ] = None,
    model: ModelOpt = "default",
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=0, max=100, help="Alternatives per token.")
    ] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the token JSON instead of a table.")
    ] = False,
    dtype: Annotated[str, typer.Option(help="auto, float32 or bfloat16.")] = "auto",
) -> None:
    """Per-token entropy, surprisal, probability, rank and top-k alternatives of a text."""
    import entrodrop
    from entrodrop.data import DataError, read_user_file
    from entrodrop.models import ModelLoadError, quiet_transformers

    if (text is None) == (file is None):
        _fail("give either TEXT or --file")
    if file is not None:
        try:
            text = "\n\n\n".join(read_user_file(file))
        except DataError as exc:
            _fail(str(exc))
    assert text is not None
    if not text.strip():
        _fail("the text is empty")
    try:
        with quiet_transformers():
            loaded = entrodrop.load(model, dtype=None if dtype == "auto" else dtype)
    except ModelLoadError as exc:
        _fail(str(exc))
    typer.echo(f"precision: {loaded.precision.reason}", err=True)  # stderr: --json stays clean
    result = entrodrop.score(loaded, text, top_k=top_k).to_dict()
    if as_json:
        json.dump(result, sys.stdout, ensure_ascii=False, allow_nan=False)
        sys.stdout.write("\n")
    else:
        _print_table(result)


def _print_summary(summary: dict[str, Any]) -> None:
    typer.secho("run finished", fg=typer.colors.GREEN)
    for key, value in summary.items():
        shown = f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else value
        typer.echo(f"  {key}: {shown}")


@app.command()
def train(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Run config JSON file.")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Run folder (default: <home>/runs/<new id>).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Override the config's model.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Override the dataset.")] = None,
    method: Annotated[str | None, typer.Option(help="Override the method.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Override max_steps.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Override epochs.")] = None,
    seq_len: Annotated[int | None, typer.Option(help="Override seq_len.")] = None,
    resume: Annotated[bool, typer.Option(help="Resume RUN_DIR from its last checkpoint.")] = False,
) -> None:
    """Fine-tune with EntroDrop or a baseline; config from --config and/or flags."""
    from pydantic import ValidationError

    from entrodrop.config import RunConfig
    from entrodrop.paths import new_run_id, runs_dir

    raw: dict[str, Any] = {}
    if config is not None:
        try:
            raw = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {config}: {exc}")
        except json.JSONDecodeError as exc:
            _fail(f"{config} is not valid JSON: {exc}")
        if not isinstance(raw, dict):
            _fail(f"{config} must hold a JSON object")
    overrides = {
        "model": model,
        "dataset": dataset,
        "method": method,
        "max_steps": max_steps,
        "epochs": epochs,
        "seq_len": seq_len,
    }
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        _fail("invalid run config:\n  " + "\n  ".join(lines))
    if run_dir is None:
        run_dir = runs_dir() / new_run_id()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
    typer.echo(f"run folder: {run_dir}")
    from entrodrop.training.run import TrainingFailed
    from entrodrop.training.run import train as run_training

    try:
        summary = run_training(cfg, run_dir, progress=True, resume=resume)
    except TrainingFailed as exc:
        _fail(f"run failed: {exc} (log: {run_dir / 'log.txt'})")
    status = summary.get("status", "succeeded")
    if status == "cancelled":
        # A requested stop is not an error (exit 0); the checkpoint allows --resume.
        typer.secho(f"run cancelled; resume with --run-dir {run_dir} --resume", fg="yellow")
        return
    if status != "succeeded":
        _fail(f"run {status}: {summary.get('error') or 'see ' + str(run_dir / 'log.txt')}")
    _print_summary(summary)


@app.command()
def prepare() -> None:
    """Convert the bundled default model to safetensors once (later loads take ~0.5 s)."""
    from entrodrop.models import ModelLoadError, ensure_default_checkpoint, quiet_transformers

    try:
        with quiet_transformers():
            path = ensure_default_checkpoint()
    except ModelLoadError as exc:
        _fail(str(exc))
    typer.echo(f"default model ready: {path}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
