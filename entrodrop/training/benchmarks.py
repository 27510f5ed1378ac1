"""Downstream benchmarks as a stage of a run: lm-eval tasks on its final model and best checkpoint.

After training (or later, `python -m entrodrop.training.run --run-dir DIR --evaluate`), each
task of the run's `eval_tasks` (or of the folder's evaluate.json request) is scored with
lm-evaluation-harness (entrodrop.eval) on the final weights and, where a best checkpoint was
kept at another step, on those too. Results go three places: metrics.jsonl rows
`bench/<task>/<metric>` at the step of the weights scored (so studies judge a run by its best
checkpoint as they do for losses), summary.json's "benchmarks", and status.json's stage while it
runs. A stop request ends the stage between two tasks; a task that fails is recorded and the
others still run: training's result stands either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entrodrop import metrics
from entrodrop.models import LoadedModel
from entrodrop.runfolder import (
    EVALUATE,
    RunFolder,
    best_checkpoint,
    checkpoint_step,
    read_json,
    run_model_dir,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str, float | None], None]  # done, total, what, eta_s


@dataclass
class Target:
    """Weights to score: `which` ("final" or "best"), their step, and how to have them loaded."""

    which: str
    step: int
    load: Callable[[], LoadedModel]


@dataclass
class BenchmarkRequest:
    """Which tasks, how many examples each, and whether generated code may run."""

    tasks: list[str]
    limit: int | None = None
    allow_code_execution: bool = False


@dataclass
class Outcome:
    """What the stage produced: results per target and task, errors, whether it was stopped."""

    results: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stopped: bool = False
    seconds: float = 0.0

    def summary(self, request: BenchmarkRequest) -> dict[str, Any]:
        """summary.json's "benchmarks"."""
        return {
            "tasks": request.tasks,
            "limit": request.limit,
            **{
                which: {"step": self.steps[which], "results": r}
                for which, r in self.results.items()
            },
            "errors": self.errors,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 2),
        }


def best_target(run_dir: Path, final_step: int, device: str | None) -> Target | None:
    """The run's best checkpoint, when one was kept at another step than the final weights."""
    found = best_checkpoint(run_dir)
    if found is None or checkpoint_step(found) == final_step:
        return None

    def load() -> LoadedModel:
        from entrodrop.models import load as load_model

        return load_model(str(found), device=device)

    return Target("best", checkpoint_step(found), load)


def benchmark_rows(task_results: dict[str, dict[str, float | None]], step: int) -> list[dict]:
    """metrics.jsonl rows of one target's results (numbers only; the sample count left out)."""
    now = time.time()
    return [
        {"step": step, "name": metrics.benchmark_name(task, name), "value": value}
        | {"epoch": 0.0, "time": now}
        for task, values in task_results.items()
        for name, value in values.items()
        if name != "n" and isinstance(value, float)
    ]


def run_benchmarks(
    folder: RunFolder,
    targets: list[Target],
    request: BenchmarkRequest,
    should_stop: Callable[[], bool],
    progress: Progress | None = None,
) -> Outcome:
    """Every task on every target, one at a time (a stop request is checked between them)."""
    from entrodrop.eval.harness import EvalError, EvalRequest, evaluate
    from entrodrop.eval.tasks import TaskError

    out, t0 = Outcome(), time.monotonic()
    units = [(target, task) for target in targets for task in request.tasks]
    loaded: dict[str, LoadedModel] = {}
    for done, (target, task) in enumerate(units):
        if should_stop():
            out.stopped = True
            log.info("benchmarks stopped by a stop request after %d of %d", done, len(units))
            break
        if progress is not None:
            eta = (time.monotonic() - t0) / done * (len(units) - done) if done else None
            progress(done, len(units), f"{task}, {target.which}", eta)
        if target.which not in loaded:  # a best checkpoint loads once, when its first task comes
            loaded[target.which] = target.load()
        evaluation = EvalRequest(
            [task], request.limit, allow_code_execution=request.allow_code_execution
        )
        try:
            result = evaluate(loaded[target.which], evaluation)
        except (EvalError, TaskError) as exc:
            out.errors.append(f"{task} ({target.which}): {exc}")
            log.warning("benchmark %s on the %s weights failed: %s", task, target.which, exc)
            continue
        out.results.setdefault(target.which, {}).update(result["results"])
        out.steps[target.which] = target.step
        folder.append_metrics(benchmark_rows(result["results"], target.step))
        log.info("benchmark %s (%s weights): %s", task, target.which, result["results"])
    out.seconds = time.monotonic() - t0
    return out


def request_of(folder: RunFolder) -> BenchmarkRequest:
    """What an evaluation of a finished run scores: the folder's evaluate.json (written by the
    dashboard's Evaluate action), else the run config's eval_tasks."""
    asked = read_json(folder.path / EVALUATE)
    if asked is not None:
        return BenchmarkRequest(
            [str(t) for t in asked.get("tasks") or []],
            asked.get("limit"),
            bool(asked.get("allow_code_execution")),
        )
    config = folder.read_config()
    return BenchmarkRequest(
        list(config.eval_tasks), config.eval_limit, config.eval_allow_code_execution
    )


def evaluate_folder(folder: RunFolder, should_stop: Callable[[], bool], progress: Progress) -> dict:
    """Benchmarks of a finished run (its final model and best checkpoint), merged into its
    summary.json; the request file is removed once done. Returns the new summary."""
    summary = read_json(folder.summary_path) or {}
    final_step = int(summary.get("steps") or 0)
    model_dir = run_model_dir(folder.path)
    if model_dir is None:
        raise ValueError(f"run {folder.path.name} has no model or checkpoint to evaluate")

    def load_final() -> LoadedModel:
        from entrodrop.models import load as load_model

        return load_model(str(model_dir))

    targets = [Target("final", final_step, load_final)]
    if (best := best_target(folder.path, final_step, None)) is not None:
        targets.append(best)
    request = request_of(folder)
    outcome = run_benchmarks(folder, targets, request, should_stop, progress)
    summary["benchmarks"] = outcome.summary(request)
    folder.write_summary(summary)
    (folder.path / EVALUATE).unlink(missing_ok=True)
    return summary
