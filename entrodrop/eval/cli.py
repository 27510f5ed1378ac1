"""`entrodrop eval`: lm-evaluation-harness tasks on a model loaded the product's way."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from entrodrop.eval.tasks import CODE_TASKS, OFFLINE, OFFLINE_TASKS, PAPER_SUITE

# The headline metric of each kind of task, in the order the table shows them.
SHOWN = ("acc", "acc_norm", "exact_match", "word_perplexity", "bits_per_byte")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _table(result: dict[str, Any]) -> str:
    lines = [f"{result['model']} ({result['precision']}), {result['seconds']:.1f} s"]
    for task, metrics in result["results"].items():
        for name in [m for m in SHOWN if m in metrics] or [k for k in metrics if k != "n"]:
            value, err = metrics[name], metrics.get(f"{name}_stderr")
            shown = "-" if value is None else f"{value:.4g}"
            shown += f" ± {1.96 * err:.3g} (95%)" if isinstance(err, float) else ""
            lines.append(f"  {task:<24} {name:<16} {shown}   n={int(metrics.get('n') or 0)}")
    return "\n".join(lines)


def _list_tasks() -> None:
    typer.echo(f"offline (bundled, no network): {OFFLINE} = {', '.join(OFFLINE_TASKS)}")
    typer.echo("  ppl:FILE          perplexity over a local .txt/.jsonl/.parquet file")
    typer.echo(f"the paper's suite (needs network): {', '.join(PAPER_SUITE)}")
    typer.echo(f"  {', '.join(CODE_TASKS)} run generated code: --allow-code-execution")
    typer.echo("any other lm-eval task name works too (python -m lm_eval ls tasks)")


def eval_command(
    model: Annotated[
        str, typer.Option("--model", "-m", help="'default', a folder, a hub id, run:<id>.")
    ] = "default",
    tasks: Annotated[
        str,
        typer.Option(help="'offline' (bundled), lm-eval task names, ppl:FILE; comma-separated."),
    ] = OFFLINE,
    limit: Annotated[int | None, typer.Option(help="Examples per task (default: all).")] = None,
    num_fewshot: Annotated[int | None, typer.Option(help="Few-shot examples per prompt.")] = None,
    include_path: Annotated[
        Path | None, typer.Option(help="A folder of your own lm-eval task YAML files.")
    ] = None,
    allow_code_execution: Annotated[
        bool, typer.Option(help="Allow tasks that run generated code (humaneval, mbpp).")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=512, help="Requests per batch.")] = 4,
    max_length: Annotated[
        int,
        typer.Option(
            min=16, max=131072, help="Tokens per window (perplexity scores long texts in windows)."
        ),
    ] = 1024,
    dtype: Annotated[str, typer.Option(help="auto, float32 or bfloat16.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    list_tasks: Annotated[bool, typer.Option("--list", help="List the tasks and exit.")] = False,
) -> None:
    """Benchmark accuracy (lm-evaluation-harness) of a model: offline tasks by default."""
    if list_tasks:
        _list_tasks()
        return
    from entrodrop.eval.harness import EvalError, EvalRequest, evaluate
    from entrodrop.eval.tasks import TaskError, split_tasks

    try:
        request = EvalRequest(split_tasks(tasks), limit, num_fewshot, include_path,
                              allow_code_execution, batch_size, max_length)  # fmt: skip
        request.check()
        loaded = _load(model, dtype)
        with contextlib.redirect_stdout(sys.stderr):  # --json keeps stdout for the JSON alone
            result = evaluate(loaded, request)
    except (TaskError, EvalError) as exc:
        _fail(str(exc))
    if as_json:
        json.dump(result, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        typer.echo(_table(result))


def _load(spec: str, dtype: str) -> Any:
    import entrodrop
    from entrodrop.eval.harness import EvalError
    from entrodrop.models import ModelLoadError, quiet_transformers

    try:
        with quiet_transformers():
            return entrodrop.load(spec, dtype=None if dtype == "auto" else dtype)
    except ModelLoadError as exc:
        raise EvalError(str(exc)) from exc
