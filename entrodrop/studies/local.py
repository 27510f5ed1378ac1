"""Run a study here, one run after another or in parallel lanes, through `entrodrop train`'s entry."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from entrodrop.paths import runs_dir as default_runs_dir
from entrodrop.runfolder import (
    CHECKPOINT_PREFIX,
    CONFIG,
    METRICS,
    RunFolder,
    latest_checkpoint,
    new_run_id,
)
from entrodrop.studies.config import StudyConfig, StudyRun
from entrodrop.studies.folder import RUN_PENDING, StudyFolder, new_study_id, studies_dir
from entrodrop.studies.results import finished_outcomes, results_csv, study_results

log = logging.getLogger(__name__)

Reporter = Callable[[dict[str, Any]], None]  # called with a run's entry after it ends


def _unique_run_ids(n: int, runs_dir: Path) -> list[str]:
    """n fresh run ids (time-based ids made within one second differ only in their random tail)."""
    ids: list[str] = []
    while len(ids) < n:
        candidate = new_run_id()
        if candidate not in ids and not (runs_dir / candidate).exists():
            ids.append(candidate)
    return ids


def create_study(
    study: StudyConfig, runs_dir: Path | None = None, home_studies: Path | None = None
) -> StudyFolder:
    """A new study folder with study.json and every run's folder and config.json written."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    parent = home_studies if home_studies is not None else studies_dir()
    folder = StudyFolder(parent / new_study_id())
    while folder.path.exists():
        folder = StudyFolder(parent / new_study_id())
    folder.path.mkdir(parents=True)
    planned = study.expand()
    runs = []
    for run_id, run in zip(_unique_run_ids(len(planned), runs_dir), planned, strict=True):
        write_run_config(runs_dir / run_id, run)
        runs.append(
            {"id": run_id, "variant": run.variant, "seed": run.seed, "status": RUN_PENDING}
            | {"error": None}
        )
    now = time.time()
    folder.write(
        {"id": folder.id, "name": study.name, "status": "queued", "created_at": now}
        | {"runs_dir": str(runs_dir.resolve()), "config": study.model_dump(mode="json")}
        | {"runs": runs}
    )
    return folder


def write_run_config(run_dir: Path, run: StudyRun) -> None:
    """The run folder and its config.json, as `entrodrop train` writes them."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG).write_text(run.config.model_dump_json(indent=2))


def train_one(run_dir: Path) -> tuple[str, str | None]:
    """Train one run folder in this process: (status, error message or None)."""
    from entrodrop.training.run import TrainingFailed, train

    config = RunFolder(run_dir).read_config()
    checkpoint = latest_checkpoint(run_dir)  # a cancelled run continues from its checkpoint
    if checkpoint is None:  # a fresh start, or a retry: no rows of an earlier attempt
        (run_dir / METRICS).unlink(missing_ok=True)
    try:
        summary = train(config, run_dir, progress=False, resume=checkpoint is not None)
    except TrainingFailed as exc:
        return "failed", str(exc)
    if not config.save_checkpoints:  # the one a stop saved, once the run is done with it
        for path in run_dir.glob(f"{CHECKPOINT_PREFIX}-*"):  # whole or not
            if summary.get("status") == "succeeded":
                shutil.rmtree(path, ignore_errors=True)
    return str(summary.get("status", "succeeded")), summary.get("error")


def refresh_results(folder: StudyFolder) -> dict[str, Any]:
    """Recompute summary.json and summary.csv from the runs finished so far."""
    record = folder.read()
    study = StudyConfig.model_validate(record["config"])
    outcomes = finished_outcomes(record["runs"], Path(record["runs_dir"]))
    result = study_results(study, outcomes)
    folder.write_results(result, results_csv(result))
    return result


def _ordered_todo(runs: list[dict[str, Any]], first: Sequence[str]) -> list[dict[str, Any]]:
    """Runs not yet succeeded: those of the `first` variants (every seed) first, else in order."""
    todo = [r for r in runs if r["status"] != "succeeded"]
    return sorted(todo, key=lambda r: r["variant"] not in first)  # sorted() is stable


def _init_lane(threads: int | None) -> None:
    """A lane process's torch threads (each lane trains one run at a time)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _lanes(workers: int, threads: int | None) -> ProcessPoolExecutor:
    """A pool of `workers` fresh processes, each used for one run only (its memory goes with it).

    spawn, not fork: a forked child would inherit this process's torch threads and locks.
    """
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_lane,
        initargs=(threads,),
        max_tasks_per_child=1,
    )


def run_study(
    folder: StudyFolder,
    progress: bool = True,
    on_run_end: Reporter | None = None,
    workers: int = 1,
    threads: int | None = None,
    first: Sequence[str] = (),
) -> dict[str, Any]:
    """Train every run of the study not yet succeeded; returns the final results.

    Runs go in the study's order (seed by seed), those of the `first` variants before the rest.
    ``workers`` > 1 trains that many runs at once, each in its own process with ``threads``
    torch threads (on a 2-core CPU two one-thread lanes trained 1.15x the steps per second of
    one two-thread process: docs/benchmarks.md, "Study lanes"); only this process writes study.json.
    A failed run is recorded and the study goes on; a cancelled run (Ctrl-C, a STOP file) ends
    the study `cancelled`, and running it again continues with the runs not yet succeeded.
    While it runs, this process holds the study's lock (StudyBusy for a second runner).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    with folder.running_here():  # StudyBusy if another process runs it: never train a run twice
        return _run_study(folder, progress, on_run_end, workers, threads, first)


def _run_study(
    folder: StudyFolder,
    progress: bool,
    on_run_end: Reporter | None,
    workers: int,
    threads: int | None,
    first: Sequence[str],
) -> dict[str, Any]:
    """run_study's work, under the study's lock."""
    from tqdm.auto import tqdm

    record = folder.read()
    runs_dir = Path(record["runs_dir"])
    todo = _ordered_todo(record["runs"], first)
    folder.set_status("running")
    outcomes: list[str] = []

    def finish(run: dict[str, Any], outcome: str, error: str | None) -> None:
        folder.update_run(run["id"], status=outcome, error=error)
        refresh_results(folder)
        outcomes.append(outcome)
        if on_run_end is not None:
            on_run_end({**run, "status": outcome, "error": error})

    with tqdm(total=len(record["runs"]), initial=len(record["runs"]) - len(todo),
              desc=record["name"], unit="run", disable=not progress) as bar:  # fmt: skip
        if workers == 1:
            _run_in_turn(todo, runs_dir, folder, finish, bar)
        else:
            _run_in_lanes(todo, runs_dir, folder, finish, bar, workers, threads)
    status = (
        "cancelled"
        if "cancelled" in outcomes
        else "failed"
        if any(r["status"] == "failed" for r in folder.read()["runs"])
        else "succeeded"
    )
    folder.set_status(status)
    return refresh_results(folder)


Finish = Callable[[dict[str, Any], str, str | None], None]


def _label(run: dict[str, Any]) -> str:
    return f"{run['variant']} seed {run['seed']}"


def _run_in_turn(
    todo: list[dict[str, Any]], runs_dir: Path, folder: StudyFolder, finish: Finish, bar: Any
) -> None:
    """One run after another in this process; a cancelled run ends the study."""
    for run in todo:
        bar.set_postfix_str(_label(run))
        folder.update_run(run["id"], status="running", error=None)
        outcome, error = train_one(runs_dir / run["id"])
        gc.collect()  # the finished run's model and optimizer go before the next loads
        finish(run, outcome, error)
        bar.update(1)
        if outcome == "cancelled":
            break


def _run_in_lanes(
    todo: list[dict[str, Any]],
    runs_dir: Path,
    folder: StudyFolder,
    finish: Finish,
    bar: Any,
    workers: int,
    threads: int | None,
) -> None:
    """`workers` runs at a time, each in a lane process; a cancel stops new runs starting.

    Ctrl-C reaches the lanes too (one process group): each saves a checkpoint and returns
    `cancelled`, and this process waits for them so that study.json records every outcome.
    """
    pending = list(todo)
    running: dict[Future[tuple[str, str | None]], dict[str, Any]] = {}
    stopping = False
    with _lanes(workers, threads) as pool:
        while running or (pending and not stopping):
            while pending and not stopping and len(running) < workers:
                run = pending.pop(0)
                folder.update_run(run["id"], status="running", error=None)
                running[pool.submit(train_one, runs_dir / run["id"])] = run
            bar.set_postfix_str(", ".join(_label(r) for r in running.values()))
            try:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                stopping = True
                continue
            for future in done:
                run = running.pop(future)
                try:
                    outcome, error = future.result()
                except Exception as exc:  # the lane died (killed, out of memory): record it
                    outcome = "cancelled" if stopping else "failed"
                    error = f"{type(exc).__name__}: {exc}"
                finish(run, outcome, error)
                bar.update(1)
                stopping = stopping or outcome == "cancelled"
