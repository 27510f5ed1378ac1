"""A version-1 database (no attempts, names or tags) opens as version 2 with its rows kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.runs.storage import SCHEMA_VERSION, Storage

V1 = """
CREATE TABLE runs (id TEXT PRIMARY KEY, created_at REAL NOT NULL, queued_at REAL NOT NULL,
    updated_at REAL NOT NULL, started_at REAL, finished_at REAL, status TEXT NOT NULL,
    config TEXT NOT NULL, launcher TEXT NOT NULL, group_id TEXT,
    resume INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, pid INTEGER,
    exit_code INTEGER, error TEXT, step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER,
    progress REAL NOT NULL DEFAULT 0, eta_s REAL, cancel_requested INTEGER NOT NULL DEFAULT 0,
    metrics_offset INTEGER NOT NULL DEFAULT 0, best_eval_loss REAL, final_eval_loss REAL);
CREATE TABLE metrics (id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, step INTEGER NOT NULL,
    name TEXT NOT NULL, value REAL, epoch REAL, time REAL, UNIQUE (run_id, name, step));
CREATE INDEX metrics_run ON metrics(run_id, id);
INSERT INTO runs (id, created_at, queued_at, updated_at, status, config, launcher, attempts)
    VALUES ('r1', 1, 1, 1, 'succeeded', '{}', '{}', 1);
INSERT INTO metrics (run_id, step, name, value) VALUES ('r1', 1, 'train/loss', 2.5);
INSERT INTO metrics (run_id, step, name, value) VALUES ('r1', 2, 'train/loss', 2.0);
PRAGMA user_version=1;
"""


def test_version_1_database_migrates_additively(tmp_path: Path) -> None:
    path = tmp_path / "entrodrop.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1)
    conn.close()
    storage = Storage(path)
    storage.open()
    run = storage.get_run("r1")
    assert run is not None and (run.name, run.notes, run.tags, run.prior_elapsed_s) == (
        "",
        "",
        [],
        0,
    )
    rows = storage.metrics("r1")
    assert [(r["step"], r["value"], r["attempt"]) for r in rows] == [(1, 2.5, 1), (2, 2.0, 1)]
    assert storage.last_values("r1") == {"train/loss": 2.0}
    storage.update_run("r1", name="kept", tags=["a"])
    storage.close()
    again = Storage(path)
    again.open()  # opening a current database changes nothing
    assert again.get_run("r1").name == "kept"  # type: ignore[union-attr]
    assert again._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    again.delete_run("r1")
    assert again.get_run("r1") is None and again.metrics("r1") == []
    again.close()
