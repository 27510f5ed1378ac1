"""One server per home: a second `entrodrop serve` on the same home exits at once, touching no run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from browser_utils import free_port
from fastapi.testclient import TestClient
from waiting import PATIENCE_S

from app.home_lock import LOCK_NAME, HomeLocked, hold_home, holding_home, release_home
from app.main import create_app
from app.runs.storage import RunRecord, Storage
from app.settings import Settings
from entrodrop.runfolder import new_run_id

REPO = Path(__file__).resolve().parent.parent


def _serve_argv(port: int, model: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "entrodrop.cli",
        "serve",
        "--port",
        str(port),
        "--model",
        str(model),
    ]


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, ENTRODROP_HOME=str(home), ENTRODROP_LOAD_MODEL_ON_STARTUP="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


@contextmanager
def running_server(home: Path, port: int, model: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`entrodrop serve` in its own process, once /api/health answers."""
    proc = subprocess.Popen(
        _serve_argv(port, model), env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180  # a safety net: it returns as soon as health answers
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the first server did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=PATIENCE_S)


def _running_row(home: Path, pid: int, run_dir: Path) -> str:
    """A run left `running` with a live process working on its folder (as a real child would)."""
    run_id = run_dir.name
    storage = Storage(home / "entrodrop.db")
    storage.open()
    now = time.time()
    storage.create_run(
        RunRecord(
            id=run_id, created_at=now, queued_at=now, updated_at=now, status="running",
            config={"model": "default"}, launcher={}, started_at=now, attempts=1, pid=pid,
        )
    )  # fmt: skip
    storage.close()
    return run_id


def test_a_second_server_on_the_same_home_refuses_and_touches_no_run(
    entrodrop_home: Path, tiny_model_dir: Path
) -> None:
    first_port, second_port = free_port(), free_port()
    with running_server(entrodrop_home, first_port, tiny_model_dir) as first:
        run_dir = entrodrop_home / "runs" / new_run_id()
        run_dir.mkdir(parents=True)
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)", str(run_dir)]
        )
        try:
            run_id = _running_row(entrodrop_home, child.pid, run_dir)
            second = subprocess.run(
                _serve_argv(second_port, tiny_model_dir),
                env=_env(entrodrop_home),
                capture_output=True,
                text=True,
                timeout=PATIENCE_S,
            )
            assert second.returncode != 0
            message = second.stderr + second.stdout
            assert "another EntroDrop Studio server" in message, message
            assert f"pid {first.pid}" in message and f":{first_port}" in message, message
            # The first still answers; the run, its process and its row are as they were.
            assert httpx.get(f"http://127.0.0.1:{first_port}/api/health").status_code == 200
            run = httpx.get(f"http://127.0.0.1:{first_port}/api/runs/{run_id}").json()
            assert run["status"] == "running", run
            assert child.poll() is None, "the second server signalled the run's process"
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{second_port}/api/health")
        finally:
            child.kill()
            child.wait()


def test_the_app_takes_the_lock_before_its_services_start(entrodrop_home: Path) -> None:
    # Another process holds the home: the app's start-up fails before the runner recovers runs.
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(entrodrop_home)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
        refused = pytest.raises(HomeLocked, match=f"pid {holder.pid}, http://127.0.0.1:1234")
        with refused, TestClient(app):
            pass
        assert app.state.jobs._task is None  # the runner never started
    finally:
        holder.kill()
        holder.wait()
    # The OS released the dead holder's lock: a new server starts without any clean-up.
    with TestClient(create_app(Settings(home=entrodrop_home, load_model_on_startup=False))) as c:
        assert c.get("/api/health").status_code == 200


_HOLD = (
    "import sys, time; from pathlib import Path; from app.home_lock import hold_home; "
    "hold_home(Path(sys.argv[1]), '127.0.0.1', 1234); print('held', flush=True); time.sleep(600)"
)


def test_one_process_may_take_its_own_lock_again(tmp_path: Path) -> None:
    lock = hold_home(tmp_path, "127.0.0.1", 8000)
    with holding_home(tmp_path, "127.0.0.1", 8000) as again:
        assert again is lock  # serve's lock, seen again by the app's lifespan
    assert (tmp_path / LOCK_NAME).read_text().startswith("{")
    with holding_home(tmp_path, "127.0.0.1", 8000) as still:
        assert still is lock  # the inner block did not release serve's lock
    release_home(lock)
    with holding_home(tmp_path, "127.0.0.1", 8000) as fresh:
        assert fresh is not lock
