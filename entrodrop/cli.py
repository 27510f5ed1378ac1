"""The `entrodrop` command line: serve the dashboard, score text, train, report data, prepare the
default model."""

from __future__ import annotations

import json
import math
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer

from entrodrop.config import MAX_TOP_K, DataFormatChoice, RunConfig, TrainOn, Truncation
from entrodrop.config_flags import deep_merge, flag_overrides, with_model_flags

app = typer.Typer(
    help="EntroDrop Studio: per-token entropy, entropy-guided token dropout, fine-tuning.",
    no_args_is_help=True,
    add_completion=False,
)

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="'default', a local folder, a hub id, run:<id> or run:<id>:<step>."
    ),
]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


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
        int, typer.Option("--top-k", "-k", min=0, max=MAX_TOP_K, help="Alternatives per token.")
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


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _print_summary(summary: dict[str, Any]) -> None:
    """The run's summary as an aligned table of rounded values (the final metrics nested)."""
    typer.secho("run finished", fg=typer.colors.GREEN)
    rows = [(k, v) for k, v in summary.items() if not isinstance(v, dict)]
    final = summary.get("final") or {}
    rows += [("final metrics", "")] if final else []
    rows += [(f"  {k}", v) for k, v in final.items()]
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        typer.echo(f"  {key:<{width}}  {_shown(value)}")


def _read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or a clear error and exit code 2."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {exc}")
    except json.JSONDecodeError as exc:
        _fail(f"{path} is not valid JSON: {exc}")
    if not isinstance(raw, dict):
        _fail(f"{path} must hold a JSON object")
    return raw


def _invalid(what: str, exc: Any) -> None:
    lines = [f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in exc.errors()]
    _fail(f"invalid {what}:\n  " + "\n  ".join(lines))


def _set_threads(threads: int | None) -> None:
    """Torch's CPU threads for this process (one is often fastest on a shared, busy CPU)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


ThreadsOpt = Annotated[
    int | None,
    typer.Option(min=1, max=1024, help="Torch CPU threads (default: torch's choice)."),
]


@app.command()
@with_model_flags(RunConfig)
def train(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Run config JSON file.")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Run folder (default: <home>/runs/<new id>).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Resume RUN_DIR from its last checkpoint.")] = False,
    preset: Annotated[
        str | None,
        typer.Option(help="Start from a named preset ('quick': the dashboard form's values)."),
    ] = None,
    threads: ThreadsOpt = None,
    **flags: Any,
) -> None:
    """Fine-tune with EntroDrop or a baseline: --preset, then --config, then flags (each wins)."""
    from pydantic import ValidationError

    from entrodrop.config import with_preset
    from entrodrop.paths import runs_dir
    from entrodrop.runfolder import RunFolder, new_run_id

    raw = _read_json_object(config) if config is not None else {}
    try:
        raw = with_preset(raw, preset)  # the file's and the flags' values win over the preset's
    except ValueError as exc:
        _fail(str(exc))
    try:
        cfg = RunConfig.model_validate(deep_merge(raw, flag_overrides(RunConfig, flags)))
    except ValidationError as exc:
        _invalid("run config", exc)
    _set_threads(threads)
    from entrodrop.data import DataError
    from entrodrop.data.check import check_run_data
    from entrodrop.models import ModelLoadError, quiet_transformers
    from entrodrop.training.run import TrainingFailed
    from entrodrop.training.run import train as run_training

    try:  # the data against the model's tokenizer: a bad file fails before any folder or weights
        with quiet_transformers():
            check_run_data(cfg)
    except (DataError, ModelLoadError) as exc:
        _fail(str(exc))
    if run_dir is None:
        run_dir = runs_dir() / new_run_id()
    RunFolder(run_dir).write_config(cfg)
    typer.echo(f"run folder: {run_dir}")

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


def _study_folder(config: Path | None, resume: Path | None, runs_dir: Path | None) -> Any:
    """The study to run: a new one from --config, or the folder --resume names."""
    from pydantic import ValidationError

    from entrodrop.studies.config import StudyConfig
    from entrodrop.studies.folder import StudyFolder
    from entrodrop.studies.local import create_study

    if (config is None) == (resume is None):
        _fail("give either --config or --resume")
    if config is not None:
        try:
            spec = StudyConfig.model_validate(_read_json_object(config))
        except ValidationError as exc:
            _invalid("study config", exc)
        return create_study(spec, runs_dir)
    assert resume is not None
    folder = StudyFolder(resume)
    if not folder.study_path.is_file():
        _fail(f"{resume} is not a study folder (no study.json)")
    return folder


def _study_launcher(processes: int, fsdp: bool) -> Any:
    """Each run's launcher: one process, or `accelerate launch` with N (FSDP: on GPUs)."""
    from pydantic import ValidationError

    from entrodrop.launch import Launcher, launcher_problem

    kind = "accelerate" if processes > 1 or fsdp else "single"
    try:
        launcher = Launcher(kind=kind, num_processes=processes, fsdp=fsdp)
    except ValidationError as exc:
        _invalid("launcher", exc)
    if (problem := launcher_problem(launcher)) is not None:
        _fail(problem)
    return launcher


StudyFolderArg = Annotated[
    Path | None,
    typer.Argument(metavar="[STUDY_FOLDER]", help="With --report: the study folder to report on."),
]
StudyConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Study config JSON file.")
]
ResumeOpt = Annotated[
    Path | None, typer.Option(help="Continue a study folder's unfinished runs instead.")
]
HomeOpt = Annotated[Path | None, typer.Option(help="Home folder (default: ENTRODROP_HOME).")]
RunsDirOpt = Annotated[
    Path | None, typer.Option(help="Where the run folders go (default: <home>/runs).")
]
WorkersOpt = Annotated[
    int,
    typer.Option(
        min=1,
        max=64,
        help="Runs trained at once, each in its own process with --threads threads "
        "(2 one-thread lanes suit a 2-core CPU).",
    ),
]
ProcessesOpt = Annotated[
    int,
    typer.Option(
        min=1, max=64, help="Processes per run: more than 1 trains under `accelerate launch`."
    ),
]
FsdpOpt = Annotated[bool, typer.Option(help="Shard each run's model over its GPUs (FSDP).")]
ReportOpt = Annotated[
    Path | None,
    typer.Option(
        help="Write the study as one self-contained HTML file: of STUDY_FOLDER alone, or "
        "after running --config / --resume."
    ),
]


@app.command()
def study(
    folder_arg: StudyFolderArg = None,
    config: StudyConfigOpt = None,
    resume: ResumeOpt = None,
    home: HomeOpt = None,
    runs_dir: RunsDirOpt = None,
    threads: ThreadsOpt = None,
    workers: WorkersOpt = 1,
    processes: ProcessesOpt = 1,
    fsdp: FsdpOpt = False,
    report: ReportOpt = None,
) -> None:
    """Run a study (every variant with every seed) here, --workers runs at a time; print the table.

    `entrodrop study --report FILE STUDY_FOLDER` writes the report of a study without training.
    """
    import os

    from entrodrop.studies.folder import StudyBusy
    from entrodrop.studies.local import run_study
    from entrodrop.studies.reading import tables

    if home is not None:
        os.environ["ENTRODROP_HOME"] = str(home)  # the runs' caches follow the home folder too
    if folder_arg is not None:
        if report is None or config is not None or resume is not None:
            _fail("a STUDY_FOLDER argument goes with --report alone (use --resume to continue it)")
        assert report is not None
        _write_report(_study_folder(None, folder_arg, runs_dir), report)
        return
    launcher = _study_launcher(processes, fsdp)
    folder = _study_folder(config, resume, runs_dir)
    typer.echo(f"study folder: {folder.path}")

    def on_run_end(run: dict[str, Any]) -> None:
        if run["status"] == "failed":
            typer.secho(f"run {run['id']} failed: {run['error']}", fg="red", err=True)

    try:
        result = run_study(folder, True, on_run_end, workers, threads, launcher=launcher)
    except StudyBusy as exc:
        _fail(str(exc))
    typer.echo(tables(result))
    if report is not None:
        _write_report(folder, report)
    _study_ending(folder)


def _write_report(folder: Any, out: Path) -> None:
    """The study's self-contained HTML report (entrodrop.studies.report) written to `out`."""
    from entrodrop.studies.report import report_html
    from entrodrop.studies.view import folder_study_view

    html = report_html(folder_study_view(folder))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {out}: {exc}")
    typer.echo(f"report: {out} ({len(html.encode('utf-8')) / 1e6:.2f} MB)")


def _study_ending(folder: Any) -> None:
    """The study's final status line; unfinished runs: the --resume command; partial or failed:
    exit code 1."""
    status = folder.read()["status"]
    typer.echo(f"study {status}: {folder.summary_path}, {folder.csv_path}")
    if status == "interrupted":
        typer.secho(f"continue with: entrodrop study --resume {folder.path}", fg="yellow")
    elif status != "succeeded":
        raise typer.Exit(code=1)


def _run_folder(run: str) -> Path:
    """A run folder by path, or by id under this home's runs folder."""
    from entrodrop.paths import runs_dir
    from entrodrop.runfolder import is_run_id

    path = Path(run).expanduser()
    if not path.is_dir() and is_run_id(run) and (runs_dir() / run).is_dir():
        path = runs_dir() / run
    if not path.is_dir():
        _fail(f"no run folder {run}")
    return path


def _print_tokens(view: dict[str, Any]) -> None:
    """The record in a few lines: its steps, the cartography's counts and the rebound's tokens."""
    cart = view["cartography"]
    steps = view["steps"]
    typer.echo(
        f"{view['n_tokens']} tokens, {len(steps)} evaluations (steps {steps[0]}..{steps[-1]})"
        if steps
        else f"{view['n_tokens']} tokens, no evaluation yet"
    )
    means = ", ".join(
        f"{s}: {m:.4f}" for s, m in zip(steps, view["eval_loss"], strict=True) if m is not None
    )
    typer.echo(f"held-out mean loss by step: {means}")
    labels = {b["id"]: b["label"] for b in cart["buckets"]}
    typer.echo(f"  {'class':<26}{labels['low']:>13}{labels['high']:>13}{'all':>8}")
    for c in cart["classes"]:
        n = cart["counts"][c["id"]]
        typer.echo(f"  {c['label']:<26}{n['low']:>13}{n['high']:>13}{n['all']:>8}")
    if cart["top_rebound"]:
        typer.echo("largest rise from best to final (the rebound):")
    for t in cart["top_rebound"]:
        typer.echo(
            f"  {t['text']!r:<18} +{t['rise']:.3f} nats (best {t['best_loss']:.3f} at step "
            f"{t['best_step']}, final {t['final_loss']:.3f}, {t['bucket']}-entropy)"
        )


@app.command()
def tokens(
    run: Annotated[str, typer.Argument(help="A run folder (or a run id of this home).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON of GET /api/runs/{id}/tokens.")
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print one CSV row per token.")] = False,
    step: Annotated[
        int | None, typer.Option(min=0, help="The record as it stood at this evaluation step.")
    ] = None,
    rank: Annotated[bool, typer.Option("--rank", help="Include the true tokens' ranks.")] = False,
    top: Annotated[int, typer.Option(min=0, max=1000, help="Tokens listed for the rebound.")] = 20,
) -> None:
    """A run's per-token record: loss and entropy of every probe token at every evaluation, and
    its cartography (learned, forgotten, never learned, known)."""
    from entrodrop.runfolder import RunFolder
    from entrodrop.tokens import TokenRecordError
    from entrodrop.tokens.view import tokens_csv, tokens_view

    folder = RunFolder(_run_folder(run), writer=False)
    try:
        record = folder.read_tokens()
        if as_csv:
            sys.stdout.write(tokens_csv(record, step))
            return
        view = tokens_view(record, step, with_rank=rank, top=top)
    except TokenRecordError as exc:
        _fail(str(exc))
    view = {"run_id": folder.path.name, **view}
    if as_json:
        json.dump(view, sys.stdout, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        sys.stdout.write("\n")
    else:
        _print_tokens(view)


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="A run id (under the home's runs) or a run folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The model folder to write.")],
    checkpoint: Annotated[
        str, typer.Option(help="final (the run's model/), best, or a checkpoint's step.")
    ] = "final",
    merge: Annotated[
        bool, typer.Option(help="A LoRA run: the base with the adapter merged in.")
    ] = False,
) -> None:
    """Write a run's model as a Hugging Face folder with a model card (README.md)."""
    from entrodrop import runfolder
    from entrodrop.export import ExportError, check_disk, export_run
    from entrodrop.models import quiet_transformers
    from entrodrop.paths import runs_dir

    path = Path(run)
    run_dir = path if path.is_dir() else runs_dir() / run
    if not path.is_dir() and not runfolder.is_run_id(run):
        _fail(f"no run folder {run!r} (give a run id or a folder)")
    try:
        which = runfolder.parse_which(checkpoint)
        check_disk(run_dir, which, out, merge)
        with quiet_transformers():
            result = export_run(run_dir, which, out, merge)
    except (ExportError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(
        f"exported {result.kind} weights of step {result.step} ({checkpoint}) to {result.folder}: "
        f"{len(result.files)} files, {result.bytes / 1e6:.1f} MB"
    )
    typer.echo(f"load it: from_pretrained({str(result.folder)!r}) or --model {result.folder}")
    typer.echo(f"share it yourself (not run here): {result.upload_command()}")


def _print_report(report: dict[str, Any]) -> None:
    share = report["trained_tokens"] / max(1, report["tokens"])
    rows = [
        ("format", report["format"]),
        ("examples", report["examples"]),
        ("tokens", report["tokens"]),
        (
            "trained tokens",
            f"{report['trained_tokens']} ({share:.1%}, train_on {report['train_on']})",
        ),
        ("longer than seq_len", f"{report['truncated']} (seq_len {report['seq_len']})"),
        ("left out", report["dropped"]),
    ]
    for key, value in rows:
        typer.echo(f"  {key:<20} {value}")


@app.command()
def data(
    file: Annotated[str, typer.Argument(help="A data file, or a built-in dataset name.")],
    model: ModelOpt = "default",
    data_format: Annotated[
        DataFormatChoice,
        typer.Option("--format", help="Force a format instead of detecting it from the keys."),
    ] = "auto",
    seq_len: Annotated[
        int, typer.Option(min=8, max=32768, help="Tokens per example at most (as in a run).")
    ] = RunConfig().seq_len,
    train_on: Annotated[
        TrainOn, typer.Option(help="Instruction data: answers or all.")
    ] = "answers",
    truncation: Annotated[
        Truncation, typer.Option(help="Examples longer than seq_len: truncate or drop.")
    ] = "truncate",
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON object.")] = False,
) -> None:
    """A data file's format and counts as a run would see them: examples, tokens after the chat
    template, trained tokens, examples truncated (the same object as summary.json's "data")."""
    from entrodrop.data import DataError, all_examples, data_report
    from entrodrop.models import ModelLoadError, load_tokenizer, quiet_transformers

    try:
        examples = all_examples(file, data_format=data_format)
        with quiet_transformers():
            tokenizer, name = load_tokenizer(model)
        report = data_report(examples, tokenizer, seq_len, train_on, truncation, name)
    except (DataError, ModelLoadError) as exc:
        _fail(str(exc))
    if as_json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        typer.echo(f"{file} with {name}:")
        _print_report(report)


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


def _register_eval() -> None:
    from entrodrop.eval.cli import eval_command

    app.command(name="eval")(eval_command)


_register_eval()


def add_plugin_commands(group: str = "entrodrop.commands") -> None:
    """Commands other installed packages declare (the dashboard's `serve`): the library names none."""
    taken = {c.name or getattr(c.callback, "__name__", "") for c in app.registered_commands}
    for entry in entry_points(group=group):
        if entry.name in taken:
            continue  # the same package seen twice (e.g. an editable install beside a checkout)
        taken.add(entry.name)
        try:
            command = entry.load()
        except (ImportError, AttributeError) as exc:  # a broken plugin must not break the CLI
            typer.secho(f"warning: command {entry.name!r} unavailable: {exc}", err=True)
            continue
        app.command(name=entry.name)(command)


add_plugin_commands()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
