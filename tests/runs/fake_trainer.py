"""A stand-in for `python -m entrodrop.training.run` that misbehaves on request (the runs tests).

It writes its folder through the real run-folder contract (entrodrop.runfolder.RunFolder), so a
change to the contract reaches this double too. Its behaviour is the config's `model` when that
starts with "fake:", else picked by the seed (API tests need a model that passes validation):
see SEED_MODES in runs_helpers.py.

    python fake_trainer.py --run-dir DIR [--resume]
"""

from __future__ import annotations

import signal
import sys
import time
import types
from pathlib import Path

if __name__ == "__main__":
    # The run-folder contract without the package's __init__, which imports torch (~3 s a start).
    _package = types.ModuleType("entrodrop")
    _package.__path__ = [str(Path(__file__).resolve().parents[2] / "entrodrop")]
    sys.modules.setdefault("entrodrop", _package)

from entrodrop import runfolder as rf  # noqa: E402
from entrodrop.metrics import (  # noqa: E402
    EVAL_LOSS,
    FRACTION_REALISED,
    RATE_SCHEDULED,
    TRAIN_LOSS,
)

SEED_MODES = {
    101: "slow", 102: "crash", 103: "ckpt", 104: "nospace", 105: "starting", 106: "drops",
    107: "after",
}  # fmt: skip


class Fake:
    """One fake run: its folder, its mode and whether a stop was asked for."""

    def __init__(self, argv: list[str]) -> None:
        self.folder = rf.RunFolder(Path(argv[argv.index("--run-dir") + 1]))
        self.resume = "--resume" in argv
        config = self.folder.read_config()
        named = config.model.startswith("fake:")
        self.mode = config.model[5:] if named else SEED_MODES.get(config.seed, "ok")
        self.stopping = False

    def status(self, status: rf.Status = "running", **fields: object) -> None:
        self.folder.write_status(
            status, **({"step": 0, "total_steps": 10, "progress": 0.0} | fields)
        )

    def metric(self, step: int, name: str = TRAIN_LOSS, value: float | None = None) -> None:
        value = 5.0 - step / 10 if value is None else value
        row = {"step": step, "name": name, "value": value, "epoch": step / 10, "time": time.time()}
        self.folder.append_metrics([row])

    def ready(self) -> None:
        (self.folder.path / "ready").touch()  # the tests' signal: the child is at work

    def stop_asked(self) -> bool:
        return self.stopping or self.folder.stop_path.exists()

    def on_term(self, signum: int, frame: object) -> None:
        self.stopping = True


def ok(fake: Fake) -> None:
    for step in range(1, 4):
        fake.metric(step)
        fake.metric(step, EVAL_LOSS, 6.0 - step / 10)
        fake.status(step=step, total_steps=3, progress=step / 3, eta_s=1.0)
    fake.folder.write_summary({"status": "succeeded", "step_time_s": 0.25, "total_steps": 3})
    fake.status("succeeded", step=3, total_steps=3, progress=1.0)


def crash(fake: Fake) -> None:
    fake.metric(1)
    fake.metric(2)
    raise RuntimeError("boom: the fake trainer crashed")


def nospace(fake: Fake) -> None:
    """Dies of a full disk when the test says so (it creates `die` in the run folder)."""
    fake.metric(1)
    fake.ready()
    while not (fake.folder.path / "die").exists():
        time.sleep(0.05)
    raise OSError(28, "No space left on device")  # what a full disk does to a real trainer


def hang(fake: Fake) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a child that never stops cleanly
    fake.metric(1)
    fake.ready()
    while True:
        time.sleep(1)


def partial(fake: Fake) -> None:
    for step in range(1, 4):
        fake.metric(step)
    with open(fake.folder.metrics_path, "a", encoding="utf-8") as f:
        f.write('{"step": 4, "name": "train/lo')  # killed mid-line
        f.flush()
    fake.ready()
    while True:
        time.sleep(1)


def slow(fake: Fake) -> None:
    signal.signal(signal.SIGTERM, fake.on_term)
    step = 0
    while not fake.stop_asked():
        step += 1
        fake.metric(step)
        fake.status(
            step=step,
            total_steps=1000,
            progress=step / 1000,
            stage="training",
            stage_text=f"training step {step}/1000",
        )
        fake.ready()
        time.sleep(0.1)
    fake.status("cancelled", step=step, total_steps=1000, progress=step / 1000)


def ckpt(fake: Fake) -> None:
    """Like slow, with a complete checkpoint at step 3; --resume continues from it, cutting the
    metrics after it as the real trainer does."""
    signal.signal(signal.SIGTERM, fake.on_term)
    step = 0
    if fake.resume:
        latest = rf.latest_checkpoint(fake.folder.path)
        step = rf.checkpoint_step(latest) if latest is not None else 0
        fake.folder.truncate_metrics_after(step)
    while not fake.stop_asked():
        step += 1
        fake.metric(step)
        if step == 3:
            checkpoint = rf.checkpoint_dir(fake.folder.path, 3)
            checkpoint.mkdir(exist_ok=True)
            (checkpoint / rf.WEIGHT_FILES[0]).write_bytes(b"weights")
            (checkpoint / rf.TRAINER_STATE).write_text("{}")
        fake.status(step=step, total_steps=1000, progress=step / 1000)
        fake.ready()
        time.sleep(0.1)
    fake.status("cancelled", step=step, total_steps=1000, progress=step / 1000)


def starting(fake: Fake) -> None:
    """An ETA, then (once the test says go) the status of a run that is starting: no ETA, the
    stage's own remaining time; the server must not keep the earlier ETA."""
    signal.signal(signal.SIGTERM, fake.on_term)
    fake.status(step=1, eta_s=5.0, starting=False)
    while not (fake.folder.path / "go").exists() and not fake.stopping:
        time.sleep(0.05)
    fake.status(stage="reference", stage_text="scoring with the starting model 2/3",
                starting=True, eta_s=None, stage_eta_s=3.0)  # fmt: skip
    while not fake.stop_asked():
        time.sleep(0.05)
    fake.status("cancelled")


def drops(fake: Fake) -> None:
    """A noisy training loss beside a deterministic schedule r(s) (a formula of the step): what
    chart smoothing may touch and what it may not."""
    import math

    for step in range(1, 9):
        fake.metric(step, value=5.0 - step / 10 + (0.3 if step % 2 else -0.3))
        rate = 0.5 / (1 + math.exp(-10 * (step / 8 - 0.5)))
        fake.metric(step, RATE_SCHEDULED, rate)
        fake.metric(step, FRACTION_REALISED, rate / 2)
        fake.status(step=step, total_steps=8, progress=step / 8, eta_s=1.0)
    fake.folder.write_summary({"status": "succeeded", "total_steps": 8})
    fake.status("succeeded", step=8, total_steps=8, progress=1.0)


def after(fake: Fake) -> None:
    """An early-stopped run: its best evaluation at step 2 kept as a checkpoint beside step 3,
    a final model, and benchmark results in its summary (what the run page shows after training)."""
    for step in range(1, 4):
        fake.metric(step)
        fake.metric(step, EVAL_LOSS, (6.0, 5.5, 5.7)[step - 1])
        if step > 1:  # the retention keeps the last and the best
            checkpoint = rf.checkpoint_dir(fake.folder.path, step)
            checkpoint.mkdir(exist_ok=True)
            (checkpoint / rf.WEIGHT_FILES[0]).write_bytes(b"weights")
            (checkpoint / rf.TRAINER_STATE).write_text('{"best_global_step": 2}')
        fake.status(step=step, total_steps=8, progress=step / 8, eta_s=4.0)
    model = fake.folder.path / rf.MODEL
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    results = {"python_docs_mc": {"acc": 0.5, "acc_stderr": 0.1, "n": 4}}
    fake.metric(3, "bench/python_docs_mc/acc", 0.5)
    fake.folder.write_summary({
        "status": "succeeded", "total_steps": 3, rf.BEST_STEP: 2,
        rf.BEST_METRICS: {EVAL_LOSS: 5.5}, rf.STOPPED_EARLY: True,
        rf.STOP_REASON: "early stopping at step 3: held-out loss (eval/loss) did not improve "
        "for 1 evaluation(s); best 5.5000 at step 2",
        "benchmarks": {"tasks": ["python_docs_mc"], "limit": 4, "errors": [], "stopped": False,
                       "final": {"step": 3, "results": results}},
    })  # fmt: skip
    fake.status("succeeded", step=3, total_steps=3, progress=1.0)


MODES = {
    "after": after,
    "ok": ok,
    "starting": starting,
    "drops": drops,
    "crash": crash,
    "nospace": nospace,
    "hang": hang,
    "partial": partial,
    "slow": slow,
    "ckpt": ckpt,
}


def main() -> None:
    fake = Fake(sys.argv)
    fake.status()
    with open(fake.folder.log_path, "a", encoding="utf-8") as log:
        log.write(f"fake trainer: {fake.mode}\n")
    MODES[fake.mode](fake)


if __name__ == "__main__":
    main()
