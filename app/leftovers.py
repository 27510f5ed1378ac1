"""Start-up clean-up of what a full disk or a crash leaves in the home: half-written uploads, run
folders that never became runs, and half-written checkpoints of runs no process is writing."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from app.runs.storage import Storage
from app.runs.uploads import PART
from app.settings import Settings
from app.studies.store import StudyStore
from entrodrop import runfolder as rf
from entrodrop.data import uploads_dir

log = logging.getLogger(__name__)

# What runner.submit writes before the run's row: a folder holding only this was never launched.
NEVER_LAUNCHED = {rf.CONFIG}


@dataclass
class Cleaned:
    """What one clean-up removed (for the log and the tests)."""

    parts: list[Path] = field(default_factory=list)
    run_folders: list[Path] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)


def _never_launched(run_dir: Path) -> bool:
    try:
        names = {p.name for p in run_dir.iterdir()}
    except OSError:
        return False
    # Atomic writers leave `<name>.tmp` files when the disk fills mid-write: no launch either.
    return {n.removesuffix(".tmp") for n in names} <= NEVER_LAUNCHED


def _partial_checkpoints(run_dir: Path) -> list[Path]:
    try:
        entries = list(run_dir.iterdir())
    except OSError:
        return []
    return [
        p
        for p in entries
        if p.is_dir()
        and p.name.startswith(f"{rf.CHECKPOINT_PREFIX}-")
        and not rf.is_complete_checkpoint(p)
    ]


def _remove(path: Path) -> bool:
    try:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    except OSError as exc:  # a clean-up that fails must not stop the server from starting
        log.warning("could not remove %s: %s", path, exc)
        return False
    return True


def _study_run_ids(settings: Settings) -> set[str]:
    """Runs a study lists: a queued run of a study `entrodrop study` runs in this home holds only
    its config.json until its turn comes, and has no row: it is not a leftover."""
    ids = set()
    for record in StudyStore(settings).records():
        runs = record.get("runs")
        for run in runs if isinstance(runs, list) else []:
            if isinstance(run, dict) and isinstance(run.get("id"), str):
                ids.add(run["id"])
    return ids


def clean_leftovers(settings: Settings, storage: Storage) -> Cleaned:
    """Remove leftovers; queued and running runs are left alone (a live process may own them)."""
    done = Cleaned()
    uploads = uploads_dir(settings.home)
    if uploads.is_dir():
        done.parts = [p for p in uploads.glob(f"*{PART}") if _remove(p)]
    if not settings.runs_path.is_dir():
        return done
    runs = {run.id: run for run in storage.list_runs()}
    studied = _study_run_ids(settings)
    for run_dir in sorted(settings.runs_path.iterdir()):
        if not run_dir.is_dir() or not rf.is_run_id(run_dir.name):
            continue
        run = runs.get(run_dir.name)
        if run is None:
            # No row: the database write failed after the folder was made. A folder with more
            # in it (metrics, checkpoints) is someone's data: it is kept.
            if run_dir.name not in studied and _never_launched(run_dir) and _remove(run_dir):
                done.run_folders.append(run_dir)
            continue
        if run.status not in rf.ACTIVE:
            done.checkpoints += [p for p in _partial_checkpoints(run_dir) if _remove(p)]
    return done


class LeftoverCleaner:
    """An app service: cleans once at start-up, after the home's lock and before the runner."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage

    async def start(self) -> None:
        if not self.storage.is_open:
            self.storage.open()
        done = clean_leftovers(self.settings, self.storage)
        for kind, paths in vars(done).items():
            if paths:
                log.warning("removed %d leftover %s: %s", len(paths), kind, paths)

    async def stop(self) -> None:
        """Nothing to stop."""
