"""Faults: a training process or the whole server killed mid-run, an unusable home, a score flood."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import live_server
from fastapi.testclient import TestClient
from runs_helpers import wait_sync
from waiting import PATIENCE_S

from app.home_lock import HomeUnusable
from app.main import create_app
from app.settings import Settings
from entrodrop import runfolder as rf

REPO = Path(__file__).resolve().parents[2]


def tiny_run(model: Path, **kw: Any) -> dict[str, Any]:
    """A POST /api/runs body for a short run of the tiny model."""
    base = dict(model=str(model), seq_len=32, batch_size=2, max_eval_tokens=64, eval_every=3)
    return base | kw


def file_rows(run_dir: Path) -> set[tuple[int, str]]:
    """(step, name) of every complete line of metrics.jsonl (a line cut by a kill is not one)."""
    raw = (run_dir / rf.METRICS).read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1].decode()
    return {(r["step"], r["name"]) for r in map(json.loads, complete.splitlines())}


def db_rows(client: Any, run_id: str) -> list[tuple[int, str]]:
    res = client.get(f"/api/runs/{run_id}/metrics")
    assert res.status_code == 200
    return [(r["step"], r["name"]) for r in res.json()]


def integrity(db: Path) -> str:
    conn = sqlite3.connect(str(db))
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def run_status(client: Any, run_id: str) -> dict[str, Any]:
    res = client.get(f"/api/runs/{run_id}")
    assert res.status_code == 200
    body: dict[str, Any] = res.json()
    return body


def wait_finished(client: Any, run_id: str, timeout: float = PATIENCE_S) -> dict[str, Any]:
    done = lambda: run_status(client, run_id)["status"] not in ("queued", "running")  # noqa: E731
    wait_sync(done, timeout, f"run {run_id} to finish")
    return run_status(client, run_id)


# ---------------------------------------------------------------- an unusable home


def test_home_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(HomeUnusable) as info:
        create_app(Settings(home=blocker / "home", load_model_on_startup=False))
    message = str(info.value)
    assert str(blocker / "home") in message and "ENTRODROP_HOME" in message


def test_full_home_stops_the_server_at_start_up(tmp_path: Path) -> None:
    """A disk with no room (no file may grow: RLIMIT_FSIZE = 0) -> a message, exit code 2."""
    env = {**os.environ, "ENTRODROP_HOME": str(tmp_path / "home")}

    def no_room() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    proc = subprocess.run(
        [sys.executable, "-m", "entrodrop.cli", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        preexec_fn=no_room,
    )
    assert proc.returncode == 2, proc.stderr
    assert "not writable" in proc.stderr and "ENTRODROP_HOME" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- kill -9 of the training process


def test_kill_9_of_training_keeps_every_metric_and_the_server(
    tiny_model_dir: Path, entrodrop_home: Path
) -> None:
    settings = Settings(home=entrodrop_home, model=str(tiny_model_dir))
    app = create_app(settings)
    app.state.jobs.poll_interval = 0.1
    with TestClient(app) as client:
        body = tiny_run(tiny_model_dir, max_steps=100_000, eval_every=2, save_checkpoints=False)
        run_id = client.post("/api/runs", json=body).json()["id"]
        wait_sync(lambda: len(db_rows(client, run_id)) >= 8, PATIENCE_S, "some metrics")
        pid = app.state.jobs.get(run_id).pid
        os.killpg(pid, signal.SIGKILL)  # the OOM killer, say: no handler runs
        done = wait_finished(client, run_id)
        assert done["status"] == "failed" and "SIGKILL" in done["error"], done
        run_dir = settings.runs_path / run_id
        assert set(db_rows(client, run_id)) == file_rows(run_dir)  # every line written is kept
        assert len(file_rows(run_dir)) >= 8
        # The server never noticed more than a failed run.
        assert client.get("/api/health").json()["status"] == "ok"
        assert client.post("/api/score", json={"text": "still here"}).status_code == 200
        assert client.get(f"/runs/{run_id}").status_code == 200
    assert integrity(settings.db_path) == "ok"


# ---------------------------------------------------------------- the server killed mid-run


@pytest.fixture
def server_process(entrodrop_home: Path, tiny_model_dir: Path) -> Iterator[tuple[Any, str]]:
    """`uvicorn --factory app.main:create_app` on a socket bound here; killed by the test."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {
        **os.environ,
        "ENTRODROP_HOME": str(entrodrop_home),
        "ENTRODROP_MODEL": str(tiny_model_dir),
        "ENTRODROP_LOAD_MODEL_ON_STARTUP": "false",
    }
    argv = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    proc = subprocess.Popen(
        [*argv, "--fd", str(sock.fileno()), "--log-level", "warning"],
        env=env,
        cwd=str(REPO),
        pass_fds=(sock.fileno(),),
        stdout=subprocess.DEVNULL,
    )
    sock.close()
    try:
        wait_sync(lambda: _answers(url), PATIENCE_S, "the server")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=PATIENCE_S)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.processes
def test_server_killed_mid_run_then_resume(
    server_process: tuple[Any, str], tiny_model_dir: Path, entrodrop_home: Path
) -> None:
    proc, url = server_process
    # After the first checkpoint (step 3) 9 steps and 3 evaluations are left: the test freezes
    # the child long before they are done (fewer steps than the 30 this took, same margin).
    body = tiny_run(tiny_model_dir, max_steps=12)
    run_id = httpx.post(url + "/api/runs", json=body, timeout=PATIENCE_S).json()["id"]
    run_dir = entrodrop_home / "runs" / run_id
    wait_sync(lambda: rf.checkpoints(run_dir), PATIENCE_S, "a first checkpoint")
    child = (rf.read_status(run_dir) or {})["pid"]
    os.killpg(child, signal.SIGSTOP)  # freeze it where it is, whatever the machine's speed
    proc.send_signal(signal.SIGKILL)  # the container goes down: server and training at once
    proc.wait(timeout=PATIENCE_S)
    os.killpg(child, signal.SIGKILL)
    wait_sync(lambda: not _alive(child), PATIENCE_S, "the training process to die")
    assert integrity(entrodrop_home / "entrodrop.db") == "ok"

    settings = Settings(home=entrodrop_home, model=str(tiny_model_dir), load_model_on_startup=False)
    app = create_app(settings)  # a new server on the same home
    app.state.jobs.poll_interval = 0.1
    with TestClient(app) as client:
        before = run_status(client, run_id)
        assert before["status"] == "interrupted" and before["can_resume"], before
        assert set(db_rows(client, run_id)) == file_rows(run_dir)
        res = client.post(f"/api/runs/{run_id}/resume")
        assert res.status_code == 200 and res.json()["status"] in ("queued", "running")
        after = wait_finished(client, run_id)
        assert after["status"] == "succeeded", after
        assert after["attempts"] == 2 and after["step"] == 12
        rows = db_rows(client, run_id)
        assert len(rows) == len(set(rows)) and set(rows) == file_rows(run_dir)
        assert (12, "eval/loss") in set(rows)
    assert integrity(settings.db_path) == "ok"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is gone but for its parent


# ---------------------------------------------------------------- a flood of score requests


def test_50_concurrent_scores_are_answered_or_refused(
    tiny_model_dir: Path, entrodrop_home: Path
) -> None:
    queue = 4
    app = create_app(
        Settings(home=entrodrop_home, model=str(tiny_model_dir), score_queue_size=queue)
    )
    text = "def f(x):\n    return x * 2\n" * 150  # a few thousand tokens: each job takes a while
    with live_server(app) as url:
        wait_sync(
            lambda: httpx.get(url + "/api/health").json()["model_loaded"], PATIENCE_S, "the model"
        )
        service = app.state.model_service
        peak = [0]
        stop = threading.Event()

        def watch() -> None:  # the jobs held at any moment: running + waiting
            while not stop.is_set():
                peak[0] = max(peak[0], service.status()["queue"]["pending"])
                time.sleep(0.001)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            responses = asyncio.run(_flood(url, text, 50))
        finally:
            stop.set()
            watcher.join()
        assert len(responses) == 50
        ok = [r for r in responses if r.status_code == 200]
        busy = [r for r in responses if r.status_code == 503]
        assert len(ok) + len(busy) == 50, [r.status_code for r in responses]
        assert ok and busy, (len(ok), len(busy))
        for r in ok:
            data = r.json()
            assert data["n_tokens"] > 100 and len(data["tokens"]) == data["n_tokens"]
        for r in busy:
            assert int(r.headers["Retry-After"]) >= 1 and "try again" in r.json()["detail"]
        assert peak[0] <= queue + 1  # memory stays bounded: one running + `queue` waiting
        assert service.status()["queue"]["pending"] == 0
        assert (
            httpx.post(url + "/api/score", json={"text": "after"}, timeout=PATIENCE_S).status_code
            == 200
        )


async def _flood(url: str, text: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=PATIENCE_S, limits=limits) as client:
        calls = [client.post("/api/score", json={"text": text, "top_k": 5}) for _ in range(n)]
        return list(await asyncio.gather(*calls))
