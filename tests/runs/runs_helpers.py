"""Helpers for the runs tests: a test-double training child and small async waiting utilities."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from waiting import PATIENCE_S, wait_sync, wait_until  # noqa: F401  (re-exported for the runs tests)

from app.main import create_app
from app.settings import Settings

# A stand-in for `python -m entrodrop.training.run` that follows the run-folder contract and
# misbehaves on request: the behaviour is the config's `model` when it starts with "fake:", or
# picked by the seed (API tests need a model that passes validation): see SEED_MODES.
FAKE_CHILD = r"""
import json, os, signal, sys, time
from pathlib import Path

run_dir = Path(sys.argv[sys.argv.index("--run-dir") + 1])
config = json.loads((run_dir / "config.json").read_text())
seed_modes = {101: "slow", 102: "crash", 103: "ckpt", 104: "starting", 105: "drops"}
mode = config["model"][5:] if config["model"].startswith("fake:") else seed_modes.get(
    config.get("seed"), "ok")
stop = {"flag": False}

def status(state, **kw):
    data = {"status": state, "step": 0, "total_steps": 10, "progress": 0.0, "error": None,
            "pid": os.getpid(), "started_at": time.time(), "updated_at": time.time(), "eta_s": None}
    data.update(kw)
    tmp = run_dir / "status.json.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, run_dir / "status.json")

def metric(step, name="train/loss", value=None):
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "name": name, "value": 5.0 - step / 10 if value is None
                            else value, "epoch": step / 10, "time": time.time()}) + "\n")
        f.flush()

def on_term(signum, frame):
    stop["flag"] = True

status("running")
with open(run_dir / "log.txt", "a") as log:
    log.write(f"fake trainer: {mode}\n")
if mode == "ok":
    for step in range(1, 4):
        metric(step)
        metric(step, "eval/loss", 6.0 - step / 10)
        status("running", step=step, total_steps=3, progress=step / 3, eta_s=1.0)
    (run_dir / "summary.json").write_text(json.dumps(
        {"status": "succeeded", "step_time_s": 0.25, "total_steps": 3}))
    status("succeeded", step=3, total_steps=3, progress=1.0)
elif mode == "drops":
    # A noisy training loss beside a deterministic schedule r(s) (a formula of the step): what
    # smoothing may touch and what it may not.
    import math
    for step in range(1, 9):
        metric(step, value=5.0 - step / 10 + (0.3 if step % 2 else -0.3))
        rate = 0.5 / (1 + math.exp(-10 * (step / 8 - 0.5)))
        metric(step, "drop/rate_scheduled", rate)
        metric(step, "drop/fraction_realised", rate / 2)
        status("running", step=step, total_steps=8, progress=step / 8, eta_s=1.0)
    (run_dir / "summary.json").write_text(json.dumps({"status": "succeeded", "total_steps": 8}))
    status("succeeded", step=8, total_steps=8, progress=1.0)
elif mode == "crash":
    metric(1)
    metric(2)
    raise RuntimeError("boom: the fake trainer crashed")
elif mode == "hang":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a child that never stops cleanly
    metric(1)
    (run_dir / "ready").touch()
    while True:
        time.sleep(1)
elif mode == "partial":
    for step in range(1, 4):
        metric(step)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "name": "train/lo')  # killed mid-line
        f.flush()
    (run_dir / "ready").touch()
    while True:
        time.sleep(1)
elif mode == "slow":
    signal.signal(signal.SIGTERM, on_term)
    step = 0
    while not stop["flag"] and not (run_dir / "STOP").exists():
        step += 1
        metric(step)
        status("running", step=step, total_steps=1000, progress=step / 1000,
               stage="training", stage_text=f"training step {step}/1000")
        (run_dir / "ready").touch()
        time.sleep(0.1)
    status("cancelled", step=step, total_steps=1000, progress=step / 1000)
elif mode == "starting":
    # An ETA, then (once the test says go) the status of a run that is starting: no ETA, the
    # stage's own remaining time; the server must not keep the earlier ETA.
    signal.signal(signal.SIGTERM, on_term)
    status("running", step=1, eta_s=5.0, starting=False)
    while not (run_dir / "go").exists() and not stop["flag"]:
        time.sleep(0.05)
    status("running", stage="reference", stage_text="scoring reference entropies 2/3",
           starting=True, eta_s=None, stage_eta_s=3.0)
    while not stop["flag"] and not (run_dir / "STOP").exists():
        time.sleep(0.05)
    status("cancelled")
elif mode == "ckpt":
    # Like slow, with a complete checkpoint at step 3; --resume continues from it, cutting the
    # metrics after it as the real trainer does (the file is replaced).
    signal.signal(signal.SIGTERM, on_term)
    step = 0
    if "--resume" in sys.argv:
        ckpts = sorted(int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*"))
        step = ckpts[-1]
        kept = [l for l in (run_dir / "metrics.jsonl").read_text().splitlines()
                if json.loads(l)["step"] <= step]
        (run_dir / "metrics.tmp").write_text("".join(l + "\n" for l in kept))
        os.replace(run_dir / "metrics.tmp", run_dir / "metrics.jsonl")
    while not stop["flag"] and not (run_dir / "STOP").exists():
        step += 1
        metric(step)
        if step == 3:
            ckpt = run_dir / "checkpoint-3"
            ckpt.mkdir(exist_ok=True)
            (ckpt / "model.safetensors").write_bytes(b"weights")
            (ckpt / "trainer_state.json").write_text("{}")
        status("running", step=step, total_steps=1000, progress=step / 1000)
        (run_dir / "ready").touch()
        time.sleep(0.1)
    status("cancelled", step=step, total_steps=1000, progress=step / 1000)
"""


SEED_MODES = {"slow": 101, "crash": 102, "ckpt": 103, "starting": 104, "drops": 105}


def write_fake_child(folder: Path) -> Path:
    path = folder / "fake_trainer.py"
    path.write_text(FAKE_CHILD, encoding="utf-8")
    return path


ClientFactory = Callable[..., Any]


@pytest.fixture
def make_client(entrodrop_home: Path, tmp_path: Path) -> ClientFactory:
    """A TestClient (lifespan running) on this test's home; fake=True swaps in the test double."""
    fake = write_fake_child(tmp_path)

    @contextmanager
    def make(fake_child: bool = True, **kw: Any) -> Iterator[TestClient]:
        settings = Settings(home=entrodrop_home, load_model_on_startup=False, **kw)
        app = create_app(settings)
        app.state.jobs.poll_interval = 0.1
        if fake_child:
            app.state.jobs.entry = (str(fake),)
        with TestClient(app) as client:
            yield client

    return make
