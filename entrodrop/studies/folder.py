"""The study folder contract: <home>/studies/<id>/ with study.json, summary.json and summary.csv.

study.json: ``{"id", "name", "status", "created_at", "updated_at", "runs_dir", "config": <study
config>, "runs": [{"id", "variant", "seed", "status", "error"}]}``; each run's own folder is
``<runs_dir>/<run id>/`` (the run folder contract of docs/architecture.md). Statuses: those of
:data:`STUDY_STATUSES`; a finished study is ``succeeded`` when every run succeeded, ``failed``
when at least one failed (its summary covers the others). While a process runs the study it holds
an OS lock on ``study.lock``: a second process is refused, and a reader can tell a live study from
one whose process died (the OS drops the lock even on SIGKILL; the file still says ``running``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from entrodrop.paths import home_dir
from entrodrop.runfolder import write_json_atomic, write_text_atomic
from entrodrop.studies.config import StudyConfig
from entrodrop.studies.status import STUDY_STATUSES

RUN_PENDING = "queued"
LOCK = "study.lock"
# How long taking the lock waits out a reader's momentary probe (is_running) before giving up.
LOCK_PATIENCE_S = 2.0


class StudyBusy(RuntimeError):
    """Another live process is running this study; the message names it."""


def studies_dir() -> Path:
    """Study folders live in <home>/studies/<id>/."""
    return home_dir() / "studies"


def new_study_id() -> str:
    """A short, URL-safe, time-ordered study id, e.g. s20261127-093512-3fa2."""
    return time.strftime("s%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


class StudyFolder:
    """Reads and writes one study's files (atomically: readers never see half a file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    study_path = property(lambda self: self.path / "study.json")
    summary_path = property(lambda self: self.path / "summary.json")
    csv_path = property(lambda self: self.path / "summary.csv")

    @property
    def id(self) -> str:
        return self.path.name

    def read(self) -> dict[str, Any]:
        return dict(json.loads(self.study_path.read_text(encoding="utf-8")))

    def config(self) -> StudyConfig:
        return StudyConfig.model_validate(self.read()["config"])

    def runs_dir(self) -> Path:
        return Path(self.read()["runs_dir"])

    def write(self, record: dict[str, Any]) -> None:
        if record.get("status") not in STUDY_STATUSES:
            raise ValueError(f"unknown study status {record.get('status')!r}")
        write_json_atomic(self.study_path, {**record, "updated_at": time.time()})

    def update_run(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Merge fields into one run's entry of study.json; returns the whole record."""
        record = self.read()
        for run in record["runs"]:
            if run["id"] == run_id:
                run.update(fields)
        self.write(record)
        return record

    def set_status(self, status: str) -> None:
        self.write({**self.read(), "status": status})

    def write_results(self, result: dict[str, Any], csv_text: str) -> None:
        write_json_atomic(self.summary_path, result)
        write_text_atomic(self.csv_path, csv_text)

    @contextlib.contextmanager
    def running_here(self) -> Iterator[None]:
        """Hold the study's lock while this process runs it; StudyBusy if another process does."""
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _take(fd, self.id)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": time.time()}).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing the file releases the lock

    def is_running(self) -> bool:
        """Whether some live process runs this study now (holds its lock)."""
        try:
            fd = os.open(self.path / LOCK, os.O_RDONLY)
        except FileNotFoundError:
            return False  # never run by a process that takes the lock
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # and with it the shared lock, if this probe took it
        return False

    def read_results(self) -> dict[str, Any] | None:
        if not self.summary_path.is_file():
            return None
        return dict(json.loads(self.summary_path.read_text(encoding="utf-8")))


def _take(fd: int, study_id: str) -> None:
    """Take the exclusive lock, waiting out readers' momentary probes; StudyBusy if a runner has it."""
    deadline = time.monotonic() + LOCK_PATIENCE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StudyBusy(
                    f"study {study_id} is being run by another process ({_holder(fd)}); "
                    "wait for it to end or stop it (Ctrl-C where it runs)"
                ) from None
            time.sleep(0.05)


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the file."""
    try:
        return f"pid {int(json.loads(os.pread(fd, 4096, 0).decode('utf-8'))['pid'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return "still starting"
