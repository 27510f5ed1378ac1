"""Run a study here: its runs as training processes (entrodrop.launch), one or several at once."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from entrodrop import launch
from entrodrop.launch import PARENT_ENV, Launcher, RunProcess
from entrodrop.machine import machine_facts
from entrodrop.paths import home_dir
from entrodrop.paths import runs_dir as default_runs_dir
from entrodrop.runfolder import (
    CHECKPOINT_PREFIX,
    METRICS,
    RunFolder,
    latest_checkpoint,
    new_run_id,
)
from entrodrop.studies.config import StudyConfig, StudyRun
from entrodrop.studies.folder import RUN_PENDING, StudyFolder, new_study_id, studies_dir
from entrodrop.studies.results import finished_outcomes, results_csv, study_results
from entrodrop.studies.status import study_status

log = logging.getLogger(__name__)

Reporter = Callable[[dict[str, Any]], None]  # called with a run's entry after it ends
POLL_S = 0.2  # how often the lanes look at their processes (an exit is seen this late at most)
STOP_GRACE_S = 300.0  # after Ctrl-C, how long a run may take to checkpoint before it is killed


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


def extends(saved: StudyConfig, wanted: StudyConfig) -> bool:
    """Whether `wanted` is `saved` grown at the end: more variants after its own, more seeds
    after its own, or both; the same name, base and storage, the same variants first (compared
    as validated run configs) and the same seeds first."""
    same = {"name", "base", "keep_checkpoints"}
    if saved.model_dump(mode="json", include=same) != wanted.model_dump(mode="json", include=same):
        return False
    old, new = saved.variant_configs(), wanted.variant_configs()
    same_first = [(n, c.model_dump()) for n, c in new[: len(old)]] == [
        (n, c.model_dump()) for n, c in old
    ]
    seeds_first = wanted.seeds[: len(saved.seeds)] == saved.seeds
    grown = len(new) > len(old) or len(wanted.seeds) > len(saved.seeds)
    return same_first and seeds_first and grown


def extend_study(folder: StudyFolder, wanted: StudyConfig) -> list[dict[str, Any]]:
    """Add the runs `wanted` has beyond the study's own (new variants, new seeds; see
    :func:`extends`): their folders and configs are written and study.json takes the new config;
    the runs done stay. Returns the new runs' entries (queued: running the study again trains
    them)."""
    record = folder.read()
    saved = StudyConfig.model_validate(record["config"])
    if not extends(saved, wanted):
        raise ValueError(
            "the new config must be the study's own with variants or seeds added at the end"
        )
    known = {(run["variant"], run["seed"]) for run in record["runs"]}
    planned = [run for run in wanted.expand() if (run.variant, run.seed) not in known]
    runs_dir = Path(record["runs_dir"])
    added = []
    for run_id, run in zip(_unique_run_ids(len(planned), runs_dir), planned, strict=True):
        write_run_config(runs_dir / run_id, run)
        added.append({"id": run_id, "variant": run.variant, "seed": run.seed} | _PENDING)
    runs = record["runs"] + added
    status = study_status((r["status"] for r in runs), ended=True)
    folder.write(
        {**record, "config": wanted.model_dump(mode="json"), "runs": runs} | {"status": status}
    )
    return added


_PENDING = {"status": RUN_PENDING, "error": None}


def write_run_config(run_dir: Path, run: StudyRun) -> None:
    """The run folder and its config.json, as `entrodrop train` writes them."""
    RunFolder(run_dir).write_config(run.config)


def _start(run_dir: Path, launcher: Launcher, threads: int | None) -> RunProcess:
    """Start one run's process: from its checkpoint if a cancelled attempt left one."""
    resume = latest_checkpoint(run_dir) is not None
    if not resume:  # a fresh start, or a retry: no rows of an earlier attempt
        (run_dir / METRICS).unlink(missing_ok=True)
    extra = {PARENT_ENV: str(os.getpid())}  # a run stops if this study process is killed
    if threads is not None:
        extra["OMP_NUM_THREADS"] = str(threads)
    return launch.start(run_dir, launcher, resume, launch.child_env(home_dir(), extra))


def _ended(process: RunProcess, code: int) -> tuple[str, str | None]:
    """A finished run's status and error; a succeeded run with no checkpoints wanted drops the
    one a stop may have saved."""
    status, error = launch.outcome(process.run_dir, process, code)
    config = RunFolder(process.run_dir).read_config()
    if status == "succeeded" and not config.save_checkpoints:
        for path in process.run_dir.glob(f"{CHECKPOINT_PREFIX}-*"):  # whole or not
            shutil.rmtree(path, ignore_errors=True)
    return status, error


def refresh_results(folder: StudyFolder) -> dict[str, Any]:
    """Recompute summary.json and summary.csv from the runs finished so far."""
    record = folder.read()
    study = StudyConfig.model_validate(record["config"])
    outcomes = finished_outcomes(record["runs"], Path(record["runs_dir"]), study)
    result = study_results(study, outcomes)
    folder.write_results(result, results_csv(result))
    return result


def _ordered_todo(runs: list[dict[str, Any]], first: Sequence[str]) -> list[dict[str, Any]]:
    """Runs not yet succeeded: those of the `first` variants (every seed) first, else in order."""
    todo = [r for r in runs if r["status"] != "succeeded"]
    return sorted(todo, key=lambda r: r["variant"] not in first)  # sorted() is stable


def run_study(
    folder: StudyFolder,
    progress: bool = True,
    on_run_end: Reporter | None = None,
    workers: int = 1,
    threads: int | None = None,
    first: Sequence[str] = (),
    launcher: Launcher | None = None,
) -> dict[str, Any]:
    """Train every run of the study not yet succeeded; returns the final results.

    Runs go in the study's order (seed by seed), those of the `first` variants before the rest.
    Each run is its own training process started by entrodrop.launch (one process, or
    `accelerate launch` with the given ``launcher``), ``workers`` of them at once, each with
    ``threads`` torch threads (on a 2-core CPU two one-thread lanes trained 1.15x the steps per
    second of one two-thread process: docs/benchmarks.md, "Study lanes"); only this process
    writes study.json. A failed run is recorded and the study goes on; Ctrl-C asks the running
    runs to stop cleanly (they checkpoint), starts no more, and running the study again
    continues with the runs not yet succeeded. While it runs, this process holds the study's
    lock (StudyBusy for a second runner).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    with folder.running_here():  # StudyBusy if another process runs it: never train a run twice
        return _run_study(folder, progress, on_run_end, _Lanes(workers, threads, launcher), first)


class _Lanes:
    """Up to `workers` training processes at a time, each with `threads` threads."""

    def __init__(self, workers: int, threads: int | None, launcher: Launcher | None) -> None:
        self.workers, self.threads = workers, threads
        self.launcher = launcher or Launcher()
        self.running: dict[str, RunProcess] = {}
        self.stopping = False

    def start(self, run_id: str, run_dir: Path) -> None:
        self.running[run_id] = _start(run_dir, self.launcher, self.threads)

    def stop_all(self) -> None:
        """Ctrl-C: every running run is asked to stop cleanly; a second Ctrl-C kills them."""
        if self.stopping:
            for process in self.running.values():
                process.kill_at = 0.0
        self.stopping = True
        for process in self.running.values():
            process.stop(STOP_GRACE_S)

    def finished(self) -> list[tuple[str, RunProcess, int]]:
        """The processes that have ended since the last call (waits until one has)."""
        while True:
            done = []
            for run_id, process in list(self.running.items()):
                process.enforce()
                code = process.poll()
                if code is not None:
                    done.append((run_id, self.running.pop(run_id), code))
            if done:
                return done
            time.sleep(POLL_S)


def _run_study(
    folder: StudyFolder,
    progress: bool,
    on_run_end: Reporter | None,
    lanes: _Lanes,
    first: Sequence[str],
) -> dict[str, Any]:
    """run_study's work, under the study's lock."""
    from tqdm.auto import tqdm

    record = folder.read()
    runs_dir = Path(record["runs_dir"])
    todo = _ordered_todo(record["runs"], first)
    # The machine that trains (the report shows it); a study continued elsewhere says so.
    folder.write({**record, "status": "running", "machine": machine_facts()})

    def finish(run: dict[str, Any], outcome: str, error: str | None) -> None:
        folder.update_run(run["id"], status=outcome, error=error)
        refresh_results(folder)
        if on_run_end is not None:
            on_run_end({**run, "status": outcome, "error": error})

    with tqdm(total=len(record["runs"]), initial=len(record["runs"]) - len(todo),
              desc=record["name"], unit="run", disable=not progress) as bar:  # fmt: skip
        _drive(todo, runs_dir, folder, finish, bar, lanes)
    # ended: no process of this study runs any more, so a run left queued waits for --resume
    folder.set_status(study_status((r["status"] for r in folder.read()["runs"]), ended=True))
    return refresh_results(folder)


Finish = Callable[[dict[str, Any], str, str | None], None]


def _label(run: dict[str, Any]) -> str:
    return f"{run['variant']} seed {run['seed']}"


def _drive(
    todo: list[dict[str, Any]],
    runs_dir: Path,
    folder: StudyFolder,
    finish: Finish,
    bar: Any,
    lanes: _Lanes,
) -> None:
    """Start runs while lanes are free; record each as it ends. Ctrl-C stops the lanes' runs
    cleanly (each saves a checkpoint and ends `cancelled`) and starts no more."""
    pending = list(todo)
    labels: dict[str, dict[str, Any]] = {}
    while lanes.running or (pending and not lanes.stopping):
        while pending and not lanes.stopping and len(lanes.running) < lanes.workers:
            run = pending.pop(0)
            folder.update_run(run["id"], status="running", error=None)
            try:
                lanes.start(run["id"], runs_dir / run["id"])
            except OSError as exc:
                finish(run, "failed", f"cannot start training: {exc}")
                bar.update(1)
                continue
            labels[run["id"]] = run
        bar.set_postfix_str(", ".join(_label(labels[i]) for i in lanes.running))
        try:
            ended = lanes.finished()
        except KeyboardInterrupt:
            lanes.stop_all()
            continue
        for run_id, process, code in ended:
            outcome, error = _ended(process, code)
            if lanes.stopping and outcome == "failed" and code < 0:
                outcome, error = "cancelled", None  # killed by the second Ctrl-C
            finish(labels.pop(run_id), outcome, error)
            bar.update(1)
            if outcome == "cancelled":  # a run stopped by hand (its STOP file) ends the study
                lanes.stopping = True
