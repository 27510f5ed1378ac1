"""The job runner: real training on the tiny model, test-double children for crashes and hangs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from runs_helpers import FAKE_TRAINER, PATIENCE_S, wait_until

from app.runs.runner import JobRunner
from app.runs.storage import RunRecord, Storage
from app.settings import Settings
from entrodrop import runfolder as rf
from entrodrop.config import RunConfig
from entrodrop.launch import Launcher, child_argv, headless_commands
from entrodrop.runfolder import ACTIVE, RunFolder


def settings_for(home: Path, **kw: object) -> Settings:
    # A stopping child gets all the time it needs: a clean exit must not depend on speed.
    kw = {"cancel_grace_s": PATIENCE_S} | kw
    return Settings(home=home, load_model_on_startup=False, **kw)  # type: ignore[arg-type]


def run_with(runner: JobRunner, scenario: Callable[[JobRunner], Awaitable[None]]) -> None:
    """Start the runner, play the scenario, always stop the runner (and its children)."""

    async def main() -> None:
        await runner.start()
        try:
            await scenario(runner)
        finally:
            await runner.stop()

    asyncio.run(main())


def fake_runner_with(home: Path, grace_s: float) -> JobRunner:
    settings = settings_for(home, cancel_grace_s=grace_s)
    entry = (str(FAKE_TRAINER),)
    return JobRunner(settings, Storage(settings.db_path), entry=entry, poll_interval=0.05)


@pytest.fixture
def fake_runner(entrodrop_home: Path) -> JobRunner:
    """Children that stop cleanly get all the time they need, however busy the machine."""
    return fake_runner_with(entrodrop_home, grace_s=PATIENCE_S)


def tiny_config(tiny_model_dir: Path, **kw: object) -> RunConfig:
    base: dict[str, object] = dict(
        model=str(tiny_model_dir),
        max_steps=4,
        seq_len=32,
        batch_size=2,
        eval_every=2,
        max_eval_tokens=256,  # evaluation dominates a tiny run: keep it short
    )
    return RunConfig(**(base | kw))  # type: ignore[arg-type]


def finished(runner: JobRunner, run_id: str) -> bool:
    return runner.get(run_id).status not in ACTIVE


# ---------------------------------------------------------------- pieces


def test_argv_is_a_list_in_its_own_group(tmp_path: Path) -> None:
    single = child_argv(tmp_path, Launcher(), resume=False)
    assert single == [sys.executable, "-m", "entrodrop.training.run", "--run-dir", str(tmp_path)]
    multi = child_argv(tmp_path, Launcher(kind="accelerate", num_processes=2), resume=True)
    assert multi[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in multi and multi[multi.index("--num_processes") + 1] == "2"
    assert multi[-5:] == ["-m", "entrodrop.training.run", "--run-dir", str(tmp_path), "--resume"]
    one = child_argv(tmp_path, Launcher(kind="accelerate", num_processes=1), resume=False)
    assert "--multi_gpu" not in one  # accelerate refuses --multi_gpu with one process
    assert headless_commands(Launcher()) == ["entrodrop train --config run.json"]


def test_metrics_are_ingested_incrementally(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "db.sqlite")
    storage.open()
    now = 1.0
    storage.create_run(RunRecord("r1", now, now, now, "running", {}, {}))
    path = tmp_path / "metrics.jsonl"
    line = lambda step, name="eval/loss", v=1.0: json.dumps(  # noqa: E731
        {"step": step, "name": name, "value": v}
    )
    path.write_text(line(1, v=3.0) + "\n" + line(2, v=2.0) + "\n" + '{"step": 3, "na')
    assert storage.ingest_metrics("r1", path) == 2
    first_offset = storage.get_run("r1").metrics_offset  # type: ignore[union-attr]
    assert first_offset == len(line(1, v=3.0)) + len(line(2, v=2.0)) + 2  # the partial line waits
    with path.open("a") as f:
        f.write('me": "eval/loss", "value": 2.5}\nnot json\n' + line(4, v=float("nan")) + "\n")
    assert storage.ingest_metrics("r1", path) == 3  # read from the offset only
    assert storage.ingest_metrics("r1", path) == 0
    rows = storage.metrics("r1")
    assert [(r["step"], r["value"]) for r in rows] == [(1, 3.0), (2, 2.0), (3, 2.5), (4, None)]
    run = storage.get_run("r1")
    assert run is not None and run.best_eval_loss == 2.0 and run.final_eval_loss == 2.5
    # A resume from the checkpoint at step 2: attempt 2 starts with attempt 1's rows up to it.
    before = path.read_bytes()
    storage.update_run("r1", attempts=1)
    assert storage.start_attempt("r1", path, carry_until=2) == 2
    assert [r["step"] for r in storage.metrics("r1", attempt=2)] == [1, 2]
    assert path.read_bytes() == before  # the table only: the file is the training process's
    RunFolder(tmp_path).truncate_metrics_after(2)  # the resumed training process's cut
    with path.open("a") as f:
        f.write(line(3, v=1.5) + "\n")
    storage.ingest_metrics("r1", path)
    assert [(r["step"], r["value"]) for r in storage.metrics("r1", attempt=2)][-1] == (3, 1.5)
    assert len(storage.metrics("r1", attempt=1)) == 4  # the earlier attempt stays, as history
    storage.close()


# ---------------------------------------------------------------- test-double children


def test_crash_without_status_fails_with_the_traceback_line(fake_runner: JobRunner) -> None:
    async def scenario(runner: JobRunner) -> None:
        run = runner.submit(RunConfig(model="fake:crash"))
        await wait_until(lambda: finished(runner, run.id), PATIENCE_S, "the crash")
        done = runner.get(run.id)
        assert done.status == "failed"
        assert done.error == "RuntimeError: boom: the fake trainer crashed"
        assert len(runner.storage.metrics(run.id)) == 2

    run_with(fake_runner, scenario)


def test_a_hanging_child_is_killed_after_the_grace(entrodrop_home: Path, tmp_path: Path) -> None:
    async def scenario(runner: JobRunner) -> None:
        run = runner.submit(RunConfig(model="fake:hang"))
        run_dir = runner.run_dir(run.id)
        await wait_until(lambda: (run_dir / "ready").exists(), PATIENCE_S, "the child")
        runner.cancel(run.id)
        assert runner.get(run.id).cancel_requested
        assert (run_dir / "STOP").exists()
        await wait_until(lambda: finished(runner, run.id), PATIENCE_S, "the SIGKILL")
        done = runner.get(run.id)
        assert done.status == "cancelled" and done.exit_code == -signal.SIGKILL

    run_with(fake_runner_with(entrodrop_home, grace_s=1.0), scenario)


def test_killing_the_child_loses_no_written_metric(fake_runner: JobRunner) -> None:
    async def scenario(runner: JobRunner) -> None:
        run = runner.submit(RunConfig(model="fake:partial"))
        run_dir = runner.run_dir(run.id)
        await wait_until(lambda: (run_dir / "ready").exists(), PATIENCE_S, "the child")
        os.kill(runner.get(run.id).pid or 0, signal.SIGKILL)  # out of memory, say
        await wait_until(lambda: finished(runner, run.id), PATIENCE_S, "the exit")
        done = runner.get(run.id)
        assert done.status == "failed"
        assert done.error == "the training process was killed by SIGKILL (out of memory?)"
        assert [r["step"] for r in runner.storage.metrics(run.id)] == [1, 2, 3]

    run_with(fake_runner, scenario)


def count_ticks(runner: JobRunner) -> list[int]:
    """[polls so far]: the runner's poll loop counts each tick it completes into it."""
    ticks = [0]
    tick = runner.tick

    def counted() -> None:
        tick()
        ticks[0] += 1

    runner.tick = counted  # type: ignore[method-assign]
    return ticks


def test_fifo_queue_one_at_a_time(fake_runner: JobRunner) -> None:
    ticks = count_ticks(fake_runner)

    async def scenario(runner: JobRunner) -> None:
        first = runner.submit(RunConfig(model="fake:slow"))
        second = runner.submit(RunConfig(model="fake:slow"))
        await wait_until(lambda: (runner.run_dir(first.id) / "ready").exists(), PATIENCE_S, "first")
        # The second run had its chances to start: the runner polled its queue three more times.
        seen = ticks[0]
        await wait_until(lambda: ticks[0] >= seen + 3, PATIENCE_S, "three polls")
        assert runner.get(first.id).status == "running"
        assert runner.get(second.id).status == "queued"  # max_concurrent_runs = 1
        runner.cancel(first.id)
        await wait_until(lambda: runner.get(second.id).status == "running", PATIENCE_S, "second")
        assert runner.get(first.id).status == "cancelled"
        assert runner.get(first.id).exit_code == 0  # it stopped cleanly on the STOP/SIGTERM
        runner.cancel(second.id)
        await wait_until(lambda: finished(runner, second.id), PATIENCE_S, "second cancelled")

    run_with(fake_runner, scenario)


def test_stopping_the_server_interrupts_running_runs(fake_runner: JobRunner) -> None:
    holder: dict[str, str] = {}

    async def scenario(runner: JobRunner) -> None:
        run = runner.submit(RunConfig(model="fake:slow"))
        holder["id"] = run.id
        await wait_until(
            lambda: (runner.run_dir(run.id) / "ready").exists(), PATIENCE_S, "the child"
        )

    run_with(fake_runner, scenario)  # stop() runs at the end
    storage = Storage(fake_runner.settings.db_path)
    storage.open()
    run = storage.get_run(holder["id"])
    assert run is not None and run.status == "interrupted" and run.step > 0
    assert len(storage.metrics(run.id)) >= run.step  # everything written was kept
    storage.close()


def test_a_run_that_ended_while_no_server_watched_keeps_its_end(fake_runner: JobRunner) -> None:
    settings = fake_runner.settings
    storage = Storage(settings.db_path)
    storage.open()
    storage.create_run(RunRecord("r-done", 1.0, 1.0, 1.0, "running", {}, {}, started_at=1.0))
    storage.create_run(RunRecord("r-cut", 1.0, 1.0, 1.0, "running", {}, {}, started_at=1.0))
    storage.close()
    for run_id, status in (("r-done", "succeeded"), ("r-cut", "running")):
        run_dir = settings.runs_path / run_id
        run_dir.mkdir(parents=True)
        (run_dir / rf.STATUS).write_text(json.dumps({"status": status, "updated_at": 2.0}))
        (run_dir / rf.METRICS).write_text('{"step": 1, "name": "eval/loss", "value": 1.5}\n')

    async def scenario(runner: JobRunner) -> None:
        assert runner.get("r-done").status == "succeeded"
        assert runner.get("r-cut").status == "interrupted"
        assert runner.get("r-cut").final_eval_loss == 1.5  # written while the server was down

    run_with(fake_runner, scenario)


# ---------------------------------------------------------------- the real training process


def test_launch_progress_succeeded(entrodrop_home: Path, tiny_model_dir: Path) -> None:
    settings = settings_for(entrodrop_home)
    runner = JobRunner(settings, Storage(settings.db_path), poll_interval=0.1)

    async def scenario(runner: JobRunner) -> None:
        run = runner.submit(tiny_config(tiny_model_dir))
        assert (runner.run_dir(run.id) / "config.json").is_file()  # written before the launch
        # A safety net only: the run ends whatever the machine's speed (progress between 0 and
        # 1 is shown by the cancel test below, whose run cannot finish).
        await wait_until(lambda: finished(runner, run.id), PATIENCE_S, "the tiny run")
        final = runner.get(run.id)
        assert final.status == "succeeded", final.error
        assert final.progress == 1.0 and final.step == 4
        names = {r["name"] for r in runner.storage.metrics(run.id)}
        assert {"train/loss", "eval/loss", "drop/rate_scheduled"} <= names
        assert final.best_eval_loss is not None and final.final_eval_loss is not None
        assert rf.has_final_model(runner.run_dir(run.id))

    run_with(runner, scenario)


def test_cancel_a_real_run(entrodrop_home: Path, tiny_model_dir: Path) -> None:
    settings = settings_for(entrodrop_home)
    runner = JobRunner(settings, Storage(settings.db_path), poll_interval=0.1)

    async def scenario(runner: JobRunner) -> None:
        config = tiny_config(tiny_model_dir, max_steps=100_000, eval_every=5, max_eval_tokens=64)
        run = runner.submit(config)
        # Wait on the status file's progress itself: the step can come first from the metrics
        # file (step 1's training loss) while the throttled status still says step 0.
        await wait_until(lambda: runner.get(run.id).progress > 0, PATIENCE_S, "the first steps")
        # A run of 100,000 steps cannot be over: its progress is strictly between 0 and 1.
        running = runner.get(run.id)
        assert running.status == "running" and 0 < running.progress < 1, running.progress
        assert running.total_steps == 100_000
        runner.cancel(run.id)
        await wait_until(lambda: finished(runner, run.id), PATIENCE_S, "the clean stop")
        done = runner.get(run.id)
        assert done.status == "cancelled" and done.exit_code == 0, done.error
        assert rf.read_status(runner.run_dir(run.id))["status"] == "cancelled"  # type: ignore[index]

    run_with(runner, scenario)


def test_bad_model_path_fails_with_the_message(entrodrop_home: Path, tmp_path: Path) -> None:
    settings = settings_for(entrodrop_home)
    runner = JobRunner(settings, Storage(settings.db_path), poll_interval=0.1)

    async def scenario(runner: JobRunner) -> None:
        run = runner.submit(RunConfig(model=str(tmp_path / "no-such-model"), max_steps=2))
        await wait_until(lambda: finished(runner, run.id), PATIENCE_S, "the failure")
        done = runner.get(run.id)
        assert done.status == "failed" and done.exit_code != 0
        assert "no-such-model" in (done.error or "") and "model" in (done.error or "")

    run_with(runner, scenario)


@pytest.mark.processes
def test_server_restart_interrupts_then_resume_succeeds(
    entrodrop_home: Path, tiny_model_dir: Path
) -> None:
    settings = settings_for(entrodrop_home)
    # After the first checkpoint (step 4) 8 steps are left: time to freeze the child before
    # the run could end, however the machine's load shares the CPU between it and this test.
    config = tiny_config(tiny_model_dir, max_steps=12, eval_every=4, max_eval_tokens=64)

    async def scenario() -> None:
        first = JobRunner(settings, Storage(settings.db_path), poll_interval=0.1)
        await first.start()
        run = first.submit(config)
        run_dir = first.run_dir(run.id)
        await wait_until(lambda: rf.checkpoints(run_dir), PATIENCE_S, "a checkpoint")
        orphan = first._children[run.id].process.proc
        os.killpg(orphan.pid, signal.SIGSTOP)  # hold it mid-run, whatever the machine's speed
        # The server dies: nothing watches the child any more (it lives on in its own session).
        assert first._task is not None
        first._task.cancel()

        second = JobRunner(settings, Storage(settings.db_path), poll_interval=0.1)
        await second.start()
        os.killpg(orphan.pid, signal.SIGCONT)  # it now finds the new server's SIGTERM
        try:
            assert second.get(run.id).status == "interrupted"
            await wait_until(
                lambda: orphan.poll() is not None, PATIENCE_S, "the orphan's clean stop"
            )
            await wait_until(lambda: not second._orphans, PATIENCE_S, "the orphan to be noticed")
            stopped_at = second.get(run.id).step
            second.resume(run.id)
            await wait_until(lambda: finished(second, run.id), PATIENCE_S, "the resumed run")
            done = second.get(run.id)
            assert done.status == "succeeded", done.error
            assert done.attempts == 2 and done.step == 12 and stopped_at < 12
            assert "--resume" in (run_dir / rf.OUTPUT).read_text()
            steps = sorted(r["step"] for r in second.storage.metrics(run.id, names=["train/loss"]))
            assert {1, 4, 8, 12} <= set(steps)  # (the stop logs its own step too)
            lines = (run_dir / rf.METRICS).read_text().splitlines()
            in_file = {(r["step"], r["name"]) for r in map(json.loads, lines)}
            in_db = {(r["step"], r["name"]) for r in second.storage.metrics(run.id)}
            assert in_db == in_file  # nothing lost, nothing stale from the first attempt
        finally:
            await second.stop()
            first.storage.close()

    asyncio.run(scenario())
