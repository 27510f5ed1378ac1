"""A full disk: every SQLite "database or disk is full" is a 507, and the runner's bookkeeping of a
process that died meanwhile is retried on each poll, so the run ends `failed` once space is back,
without a restart, and cancel and delete work again."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from runs_helpers import SEED_MODES, ClientFactory, wait_sync
from waiting import PATIENCE_S

from app.runs.storage import Storage

FULL = "database or disk is full"


class FullDisk:
    """Makes the app's storage writes fail as on a full disk while `full` is set."""

    WRITES = ("update_run", "create_run", "ingest_metrics", "start_attempt", "delete_run")

    def __init__(self, storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self.refused = 0
        for name in self.WRITES:
            monkeypatch.setattr(storage, name, self._guard(getattr(storage, name)))

    def _guard(self, write: Any) -> Any:
        def guarded(*args: Any, **kw: Any) -> Any:
            if self.full:
                self.refused += 1
                raise sqlite3.OperationalError(FULL)
            return write(*args, **kw)

        return guarded


@pytest.fixture
def served(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, FullDisk, list[int]]]:
    """A client, the disk switch and [polls so far] of its job runner."""
    with make_client() as client:
        app: Any = client.app
        disk = FullDisk(app.state.storage, monkeypatch)
        ticks = [0]
        tick = app.state.jobs.tick

        def counted() -> None:
            try:
                tick()
            finally:
                ticks[0] += 1

        monkeypatch.setattr(app.state.jobs, "tick", counted)
        try:
            yield client, disk, ticks
        finally:
            disk.full = False  # the server stops with its disk back


def test_a_full_disk_is_507_for_every_write(served: tuple[TestClient, FullDisk, list[int]]) -> None:
    client, disk, _ = served
    run_id = client.post("/api/runs", json={}).json()["id"]
    wait_sync(lambda: client.get(f"/api/runs/{run_id}").json()["status"] == "succeeded")
    disk.full = True
    for method, url, body in [
        ("PATCH", f"/api/runs/{run_id}", {"name": "renamed"}),
        ("POST", "/api/runs", {}),
        ("POST", "/api/studies", {"name": "s", "variants": ["none"], "seeds": [0]}),
        ("DELETE", f"/api/runs/{run_id}", None),
    ]:
        r = client.request(method, url, json=body)
        assert r.status_code == 507, (method, url, r.status_code, r.text)
        assert "disk is full" in r.json()["detail"], r.text
    disk.full = False
    r = client.patch(f"/api/runs/{run_id}", json={"name": "renamed"})
    assert r.status_code == 200 and r.json()["name"] == "renamed"


def test_a_run_that_died_on_a_full_disk_ends_failed_once_space_is_back(
    served: tuple[TestClient, FullDisk, list[int]], entrodrop_home: Path
) -> None:
    client, disk, ticks = served
    runner = client.app.state.jobs  # type: ignore[attr-defined]
    run_id = client.post("/api/runs", json={"seed": SEED_MODES["nospace"]}).json()["id"]
    run_dir = entrodrop_home / "runs" / run_id
    wait_sync(lambda: (run_dir / "ready").exists(), PATIENCE_S, "the training process")
    process = runner._children[run_id].process
    disk.full = True
    (run_dir / "die").touch()  # the training process dies of the full disk ...
    wait_sync(lambda: process.poll() is not None, PATIENCE_S, "the process to exit")
    refused = disk.refused
    wait_sync(lambda: disk.refused > refused, PATIENCE_S, "the runner to try to record it")
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "running"  # not recorded yet
    r = client.post(f"/api/runs/{run_id}/cancel")
    assert r.status_code == 507 and "disk is full" in r.json()["detail"]
    disk.full = False  # ... and space is back: the next polls record the end, no restart needed
    seen = ticks[0]
    wait_sync(lambda: ticks[0] >= seen + 3, PATIENCE_S, "three polls")
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "failed", run
    assert "No space left on device" in run["error"]
    assert [m["step"] for m in client.get(f"/api/runs/{run_id}/metrics").json()] == [1]
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 409  # it is over
    assert client.delete(f"/api/runs/{run_id}").status_code == 200
