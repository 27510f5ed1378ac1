"""Where the server keeps its studies: <home>/studies/<id>/study.json, the library's study folder.

The record holds the study's config and its runs' ids, variants and seeds; it is written once
when the study is created (``"managed_by": "server"``). The server never trusts the statuses in
the file: a server study's run statuses come from the runs table (the runner keeps them), so a
study survives restarts exactly as its runs do. Study folders written by ``entrodrop study``
in the same home are listed too, with the run statuses their file records.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from app.errors import AppError
from app.runs.facts import MAX_NAME_CHARS
from app.settings import Settings
from entrodrop.machine import machine_facts
from entrodrop.paths import home_dir
from entrodrop.runfolder import is_run_id
from entrodrop.studies.config import StudyConfig
from entrodrop.studies.folder import RUN_PENDING, StudyFolder, new_study_id, studies_dir

MANAGED_BY = "server"


def run_name(study: str, variant: object, seed: object) -> str:
    """A study run's name in the runs list and on its page: the study, its variant, its seed."""
    tail = f" · {variant} · seed {seed}"
    room = MAX_NAME_CHARS - len(tail)
    head = study if len(study) <= room else study[: max(0, room - 1)] + "…"
    return (head + tail)[:MAX_NAME_CHARS]


class StudyNotFound(AppError):
    """No study with that id."""

    status_code = 404

    def __init__(self, study_id: str) -> None:
        super().__init__(f"no study {study_id!r}")
        self.study_id = study_id


class StudyStore:
    """Study folders under the server's home (one folder per study, written atomically)."""

    def __init__(self, settings: Settings) -> None:
        # The same place as the library's studies_dir(), under this server's (injected) home.
        self.root = settings.home / studies_dir().relative_to(home_dir())
        self.runs_dir = settings.runs_path

    def folder(self, study_id: str) -> StudyFolder:
        """The folder of an existing study; StudyNotFound for any other id (or a bad one)."""
        if not is_run_id(study_id):
            raise StudyNotFound(study_id)
        folder = StudyFolder(self.root / study_id)
        if not folder.study_path.is_file():
            raise StudyNotFound(study_id)
        return folder

    def get(self, study_id: str) -> dict[str, Any]:
        return self.folder(study_id).read()

    def records(self) -> list[dict[str, Any]]:
        """Every readable study record, newest first (a damaged file is skipped, not fatal)."""
        records = []
        for path in self.root.glob("*/study.json") if self.root.is_dir() else []:
            try:
                records.append(StudyFolder(path.parent).read())
            except (OSError, ValueError):
                continue
        return sorted(
            records, key=lambda r: (r.get("created_at", 0), r.get("id", "")), reverse=True
        )

    def memberships(self) -> dict[str, dict[str, Any]]:
        """Run id -> the study it belongs to: {"id", "name", "variant", "seed", "page"}."""
        out: dict[str, dict[str, Any]] = {}
        for record in self.records():
            for run in record.get("runs", []):
                name = str(record.get("name") or record["id"])
                out[str(run["id"])] = {
                    "id": record["id"],
                    "name": name,
                    "variant": run.get("variant"),
                    "seed": run.get("seed"),
                    "run_name": run_name(name, run.get("variant"), run.get("seed")),
                    "page": f"/studies/{record['id']}",
                }
        return out

    def create(self, study: StudyConfig, runs: list[dict[str, Any]]) -> dict[str, Any]:
        """Write a new study's record: runs are [{"id", "variant", "seed"}] already queued."""
        self.root.mkdir(parents=True, exist_ok=True)
        folder = StudyFolder(self.root / new_study_id())
        while folder.path.exists():
            folder = StudyFolder(self.root / new_study_id())
        folder.path.mkdir(parents=True)
        record = {
            "id": folder.id,
            "name": study.name,
            "status": RUN_PENDING,  # the file's own field; the server derives the live one
            "created_at": time.time(),
            "runs_dir": str(self.runs_dir.resolve()),
            "config": study.model_dump(mode="json"),
            "runs": [{**r, "status": RUN_PENDING, "error": None} for r in runs],
            "managed_by": MANAGED_BY,
            "machine": machine_facts(),  # the server's runs train here (the report shows it)
        }
        folder.write(record)
        return folder.read()

    def delete(self, study_id: str) -> None:
        shutil.rmtree(self.folder(study_id).path)

    @staticmethod
    def runs_path(record: dict[str, Any]) -> Path:
        return Path(record["runs_dir"])
