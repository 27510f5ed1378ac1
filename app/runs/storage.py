"""SQLite (WAL) store of fine-tune runs and their metrics, ingested incrementally from run folders."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from entrodrop.metrics import EVAL_LOSS

SCHEMA_VERSION = 2
# Lines read per ingest call at most: a huge backlog is caught up over a few polls.
MAX_INGEST_BYTES = 4 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    queued_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    launcher TEXT NOT NULL,
    group_id TEXT,
    resume INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    exit_code INTEGER,
    error TEXT,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER,
    progress REAL NOT NULL DEFAULT 0,
    eta_s REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    metrics_offset INTEGER NOT NULL DEFAULT 0,
    best_eval_loss REAL,
    final_eval_loss REAL,
    prior_elapsed_s REAL NOT NULL DEFAULT 0,
    name TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, queued_at);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    epoch REAL,
    time REAL,
    attempt INTEGER NOT NULL DEFAULT 1,
    UNIQUE (run_id, attempt, name, step)
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, id);
"""
# Version 1 -> 2, additive: the runs table gains columns; metrics gains `attempt`, which joins its
# unique key, so that table is copied into the new shape (every row is attempt 1).
_RUNS_ADDED = {
    "prior_elapsed_s": "REAL NOT NULL DEFAULT 0",
    "name": "TEXT NOT NULL DEFAULT ''",
    "notes": "TEXT NOT NULL DEFAULT ''",
    "tags": "TEXT NOT NULL DEFAULT '[]'",
}
_METRICS_V2 = """
ALTER TABLE metrics RENAME TO metrics_v1;
CREATE TABLE metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    epoch REAL,
    time REAL,
    attempt INTEGER NOT NULL DEFAULT 1,
    UNIQUE (run_id, attempt, name, step)
);
INSERT INTO metrics (id, run_id, step, name, value, epoch, time, attempt)
    SELECT id, run_id, step, name, value, epoch, time, 1 FROM metrics_v1;
DROP TABLE metrics_v1;
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, id);
"""


@dataclass
class RunRecord:
    """One row of the runs table; `config` and `launcher` are decoded JSON."""

    id: str
    created_at: float
    queued_at: float
    updated_at: float
    status: str
    config: dict[str, Any]
    launcher: dict[str, Any]
    started_at: float | None = None
    finished_at: float | None = None
    group_id: str | None = None
    resume: bool = False
    attempts: int = 0
    pid: int | None = None
    exit_code: int | None = None
    error: str | None = None
    step: int = 0
    total_steps: int | None = None
    progress: float = 0.0
    eta_s: float | None = None
    cancel_requested: bool = False
    metrics_offset: int = 0
    best_eval_loss: float | None = None
    final_eval_loss: float | None = None
    prior_elapsed_s: float = 0.0  # the wall time of the attempts before the current one
    name: str = ""
    notes: str = ""
    tags: list[str] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        data = dict(row)
        data["config"] = json.loads(data["config"])
        data["launcher"] = json.loads(data["launcher"])
        data["tags"] = json.loads(data["tags"])
        data["resume"] = bool(data["resume"])
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)


_COLUMNS = tuple(f.name for f in fields(RunRecord))


def _finite_or_none(value: Any) -> float | None:
    # NaN/inf are not JSON; SQLite would store NaN as NULL anyway. Keep the row, lose the value.
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def parse_metric_line(
    line: bytes,
) -> tuple[int, str, float | None, float | None, float | None] | None:
    """One metrics.jsonl line -> (step, name, value, epoch, time), or None if it is unusable."""
    try:
        row = json.loads(line)
        step, name = int(row["step"]), str(row["name"])
    except (ValueError, KeyError, TypeError):
        return None
    if not name:
        return None
    return (
        step,
        name,
        _finite_or_none(row.get("value")),
        _finite_or_none(row.get("epoch")),
        (_finite_or_none(row.get("time"))),
    )


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})").fetchall()}


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a version-1 database to this schema; a new or current one is left as it is."""
    runs = _columns(conn, "runs")
    if not runs:
        return  # a new database: _SCHEMA creates everything
    conn.execute("BEGIN IMMEDIATE")
    try:
        for name, decl in _RUNS_ADDED.items():
            if name not in runs:
                conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")
        if "attempt" not in _columns(conn, "metrics"):
            for statement in _METRICS_V2.split(";"):
                if statement.strip():
                    conn.execute(statement)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class StorageUnusable(RuntimeError):
    """The database file exists but cannot be used (corrupt, not SQLite, locked)."""


def check_database(path: Path) -> None:
    """Open the database once and run SQLite's quick check; a message for a person if it fails."""
    if not path.exists():
        return
    try:
        conn = sqlite3.connect(str(path), timeout=5)
        try:
            row = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        row = (str(exc),)
    if not row or row[0] != "ok":
        raise StorageUnusable(
            f"the database {path} is damaged ({row[0] if row else 'no answer'}); move it aside "
            "and start again (the run folders under runs/ are kept, but a new database does not "
            "list them)"
        )


class Storage:
    """Runs and metrics in one SQLite file; safe to share between threads (one lock, short calls)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._inodes: dict[str, int] = {}  # metrics.jsonl identity per run, to notice a rewrite

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        # WAL: readers never block the writer; NORMAL sync is durable across a process crash.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        _migrate(conn)
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._conn = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("storage is not open")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("storage is not open")
            return self._conn.execute(sql, tuple(params)).fetchall()

    # ------------------------------------------------------------ runs

    def create_run(self, run: RunRecord) -> None:
        values = {name: getattr(run, name) for name in _COLUMNS}
        values["config"] = json.dumps(run.config)
        values["launcher"] = json.dumps(run.launcher)
        values["tags"] = json.dumps(run.tags)
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._tx() as c:
            c.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(values.values()))

    def update_run(self, run_id: str, **changes: Any) -> None:
        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown run columns: {sorted(unknown)}")
        changes["updated_at"] = time.time()
        for key in ("config", "launcher", "tags"):
            if key in changes:
                changes[key] = json.dumps(changes[key])
        assignments = ", ".join(f"{k} = ?" for k in changes)
        with self._tx() as c:
            c.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*changes.values(), run_id))

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return RunRecord.from_row(rows[0]) if rows else None

    def list_runs(self, statuses: Iterable[str] | None = None) -> list[RunRecord]:
        """Runs newest first, or (with statuses) oldest-queued first: the FIFO order."""
        if statuses is None:
            rows = self._query("SELECT * FROM runs ORDER BY created_at DESC, id DESC")
        else:
            wanted = tuple(statuses)
            marks = ", ".join("?" for _ in wanted)
            rows = self._query(
                f"SELECT * FROM runs WHERE status IN ({marks}) ORDER BY queued_at, id", wanted
            )
        return [RunRecord.from_row(r) for r in rows]

    # ------------------------------------------------------------ metrics

    def ingest_metrics(self, run_id: str, path: Path) -> int:
        """Append new complete lines of a run's metrics.jsonl; returns how many rows were read.

        Only bytes after the remembered offset are read, and the offset moves in the same
        transaction as the rows, so a crash at any point neither loses nor duplicates a line.
        A partial last line (the writer is mid-write) waits for the next call.
        """
        run = self.get_run(run_id)
        if run is None or not path.is_file():
            return 0
        offset = run.metrics_offset
        stat = path.stat()
        size = stat.st_size
        if size < offset or self._inodes.get(run_id, stat.st_ino) != stat.st_ino:
            offset = 0  # the file was replaced: read it again (rows are upserted, no duplicates)
        self._inodes[run_id] = stat.st_ino
        if size == offset:
            return 0
        with path.open("rb") as f:
            f.seek(offset)
            chunk = f.read(MAX_INGEST_BYTES)
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0
        rows = [parse_metric_line(line) for line in chunk[: end + 1].splitlines() if line.strip()]
        good = [r for r in rows if r is not None]
        attempt = max(1, run.attempts)  # the runner counts the attempt up before it launches
        with self._tx() as c:
            # Upsert: a resumed run re-logs the steps after its checkpoint; the latest value wins.
            c.executemany(
                # REPLACE gives the new value a fresh id (AUTOINCREMENT never reuses one), so
                # live readers asking for rows after the last id they saw get it too.
                "INSERT OR REPLACE INTO metrics (run_id, step, name, value, epoch, time, attempt) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *r, attempt) for r in good],
            )
            c.execute("UPDATE runs SET metrics_offset = ? WHERE id = ?", (offset + end + 1, run_id))
            if any(r[1] == EVAL_LOSS for r in good):
                self._store_eval_summary(c, run_id, attempt)
        return len(rows)

    @staticmethod
    def _store_eval_summary(c: sqlite3.Connection, run_id: str, attempt: int) -> None:
        """Best and final held-out loss of the current attempt (earlier attempts are history)."""
        where = "run_id = ? AND attempt = ? AND name = ? AND value IS NOT NULL"
        args = (run_id, attempt, EVAL_LOSS)
        best = c.execute(f"SELECT MIN(value) FROM metrics WHERE {where}", args).fetchone()[0]
        last = c.execute(
            f"SELECT value FROM metrics WHERE {where} ORDER BY step DESC LIMIT 1", args
        ).fetchone()
        c.execute(
            "UPDATE runs SET best_eval_loss = ?, final_eval_loss = ? WHERE id = ?",
            (best, last[0] if last else None, run_id),
        )

    def start_attempt(self, run_id: str, path: Path, carry_until: int | None) -> int:
        """Before a launch: the next attempt's number, its rows started.

        A resume (`carry_until` = its checkpoint step) copies the previous attempt's rows up to
        the checkpoint, so the current attempt's curves are whole; the training process cuts
        metrics.jsonl back to the checkpoint and logs the later steps again (upserted, never
        doubled). A restart (None) starts from nothing: the old file is moved aside, so no row of
        an earlier attempt is read again as this one's.
        """
        while self.ingest_metrics(run_id, path):
            pass  # every row written so far belongs to the attempt that wrote it
        run = self.get_run(run_id)
        if run is None:
            raise KeyError(run_id)
        previous, attempt = run.attempts, run.attempts + 1
        with self._tx() as c:
            if carry_until is not None and previous:
                c.execute(
                    "INSERT OR REPLACE INTO metrics (run_id, step, name, value, epoch, time, attempt) "
                    "SELECT run_id, step, name, value, epoch, time, ? FROM metrics "
                    "WHERE run_id = ? AND attempt = ? AND step <= ?",
                    (attempt, run_id, previous, carry_until),
                )
            c.execute("UPDATE runs SET attempts = ? WHERE id = ?", (attempt, run_id))
            self._store_eval_summary(c, run_id, attempt)
        if carry_until is None and previous and path.is_file():
            path.replace(path.with_name(f"metrics.attempt-{previous}.jsonl"))
            self.update_run(run_id, metrics_offset=0)
        return attempt

    def delete_run(self, run_id: str) -> None:
        """Remove a run's row and (by the foreign key's cascade) its metrics."""
        with self._tx() as c:
            c.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        self._inodes.pop(run_id, None)

    def metrics(
        self,
        run_id: str,
        after_id: int = 0,
        names: Iterable[str] | None = None,
        attempt: int | None = None,
    ) -> list[dict[str, Any]]:
        """Metric rows ordered by (attempt, name, step): one attempt's, or every attempt's (None).

        `after_id` returns only rows newer than that id.
        """
        sql = (
            "SELECT id, step, name, value, epoch, time, attempt FROM metrics "
            "WHERE run_id = ? AND id > ?"
        )
        params: list[Any] = [run_id, after_id]
        if attempt is not None:
            sql += " AND attempt = ?"
            params.append(attempt)
        wanted = tuple(names or ())
        if wanted:
            sql += f" AND name IN ({', '.join('?' for _ in wanted)})"
            params.extend(wanted)
        return [dict(r) for r in self._query(sql + " ORDER BY attempt, name, step", params)]

    def last_values(self, run_id: str) -> dict[str, float | None]:
        """The value at the latest step of each metric name, in the run's current attempt."""
        run = self.get_run(run_id)
        attempt = max(1, run.attempts) if run else 1
        rows = self._query(
            "SELECT m.name, m.value FROM metrics m JOIN (SELECT name, MAX(step) AS s FROM metrics "
            "WHERE run_id = ? AND attempt = ? GROUP BY name) last "
            "ON m.name = last.name AND m.step = last.s WHERE m.run_id = ? AND m.attempt = ?",
            (run_id, attempt, run_id, attempt),
        )
        return {r["name"]: r["value"] for r in rows}
