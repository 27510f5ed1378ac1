"""The run folder contract (docs/architecture.md): config, metrics, status, log, stop file."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from entrodrop.config import RunConfig

STATUSES = ("running", "succeeded", "failed", "cancelled")


class RunFolder:
    """Reads and writes one run's files. Only the main process writes (``writer=True``)."""

    def __init__(self, path: str | Path, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        self._status: dict[str, Any] = {}

    config_path = property(lambda self: self.path / "config.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    status_path = property(lambda self: self.path / "status.json")
    log_path = property(lambda self: self.path / "log.txt")
    stop_path = property(lambda self: self.path / "STOP")
    model_dir = property(lambda self: self.path / "model")
    summary_path = property(lambda self: self.path / "summary.json")

    def read_config(self) -> RunConfig:
        return RunConfig.model_validate_json(self.config_path.read_text(encoding="utf-8"))

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    # ---------------------------------------------------------------- status.json

    def write_status(self, status: str | None = None, **fields: Any) -> None:
        """Merge fields into status.json and replace it atomically (readers never see half a file)."""
        if not self.writer:
            return
        if not self._status and self.status_path.is_file():
            try:  # keep started_at and friends from an earlier attempt (resume)
                self._status = json.loads(self.status_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._status = {}
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            self._status["status"] = status
        self._status.update(fields)
        self._status.setdefault("error", None)
        self._status.setdefault("eta_s", None)
        self._status["pid"] = os.getpid()
        self._status["updated_at"] = time.time()
        write_json_atomic(self.status_path, self._status)

    def read_status(self) -> dict[str, Any]:
        return dict(json.loads(self.status_path.read_text(encoding="utf-8")))

    # ---------------------------------------------------------------- metrics.jsonl

    def append_metrics(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append rows as JSON lines and flush at once, so a killed process loses nothing written."""
        if not self.writer:
            return
        lines = "".join(json.dumps(dict(r)) + "\n" for r in rows)
        if lines:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        rows = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line cut short by a kill: skip it
                continue
        return rows

    def truncate_metrics_after(self, step: int) -> None:
        """On resume: drop rows logged after the checkpoint, which the resumed run logs again."""
        if not self.writer or not self.metrics_path.is_file():
            return
        kept = [r for r in self.read_metrics() if int(r.get("step", 0)) <= step]
        write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        if self.writer:
            write_json_atomic(self.summary_path, summary)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(_finite(dict(data)), indent=2) + "\n")


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
