"""Run a study here, one run after another, through the same training entry as `entrodrop train`."""

from __future__ import annotations

import gc
import logging
import shutil
import time
from collections.abc import Callable
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


def run_study(
    folder: StudyFolder, progress: bool = True, on_run_end: Reporter | None = None
) -> dict[str, Any]:
    """Train every run of the study not yet succeeded, in order; returns the final results.

    A failed run is recorded and the study goes on; a cancelled run (Ctrl-C, a STOP file) ends
    the study `cancelled`, and running it again continues with the runs not yet succeeded.
    """
    from tqdm.auto import tqdm

    record = folder.read()
    runs_dir = Path(record["runs_dir"])
    todo = [r for r in record["runs"] if r["status"] != "succeeded"]
    folder.set_status("running")
    status = "succeeded"
    with tqdm(total=len(record["runs"]), initial=len(record["runs"]) - len(todo),
              desc=record["name"], unit="run", disable=not progress) as bar:  # fmt: skip
        for run in todo:
            bar.set_postfix_str(f"{run['variant']} seed {run['seed']}")
            folder.update_run(run["id"], status="running", error=None)
            outcome, error = train_one(runs_dir / run["id"])
            gc.collect()  # the finished run's model and optimizer go before the next loads
            run = {**run, "status": outcome, "error": error}
            folder.update_run(run["id"], status=outcome, error=error)
            refresh_results(folder)
            if on_run_end is not None:
                on_run_end(run)
            bar.update(1)
            if outcome == "cancelled":
                status = "cancelled"
                break
            if outcome != "succeeded":
                status = "failed"
    if status == "succeeded" and any(r["status"] == "failed" for r in folder.read()["runs"]):
        status = "failed"
    folder.set_status(status)
    return refresh_results(folder)
