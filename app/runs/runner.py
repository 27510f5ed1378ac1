"""The job runner: each fine-tune run is a child process; a FIFO queue, cancel, resume, recovery.

The server never trains. It writes `config.json` into the run folder, starts
`python -m entrodrop.training.run --run-dir DIR` (argument list, own process group) and a
background task polls the children: it ingests metrics.jsonl into SQLite, mirrors status.json,
and turns exits into final statuses (entrodrop/runfolder.py is the run-folder contract).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import RunConflict, RunNotFound
from app.runs import timings
from app.runs.storage import RunRecord, Storage
from app.settings import Settings
from entrodrop import launch
from entrodrop import runfolder as rf
from entrodrop.config import RunConfig
from entrodrop.data import TEXT_BUDGET_ENV
from entrodrop.launch import (
    DEFAULT_ENTRY,
    Launcher,
    RunProcess,
    find_orphan,
    process_alive,
    signal_tree,
)

log = logging.getLogger(__name__)

RESUMABLE = ("interrupted", "cancelled", "failed")
KILLED_WAIT_S = 10.0  # how long a stopping server waits to record SIGKILLed children


@contextlib.contextmanager
def _retried_next_tick(run_id: str, doing: str) -> Iterator[None]:
    """Bookkeeping of one run that may fail on a full disk (SQLite or a file): logged, left for
    the next tick to do again, and never in the way of the other runs."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        log.warning("run %s: %s failed (%s); trying again on the next poll", run_id, doing, exc)


@dataclass
class _Child:
    """A training process this server started (entrodrop.launch) and what the server knows of it."""

    process: RunProcess
    shutdown: bool = False  # stopped because the server stops: the run becomes `interrupted`
    # Which status.json was last mirrored. Each write replaces the file (a new inode), and
    # mtimes are only as fine as the kernel's tick: two writes in one tick share an mtime.
    status_seen: tuple[int, int, int] = (0, 0, 0)
    evaluating: bool = False  # benchmarking a finished run (it stays `succeeded` whatever ends)

    @property
    def run_dir(self) -> Path:
        return self.process.run_dir

    @property
    def launched_at(self) -> float:
        return self.process.launched_at


@dataclass
class _Orphan:
    """A training process left by a dead server, being stopped."""

    pid: int
    run_dir: Path
    kill_at: float


class JobRunner:
    """Starts, watches and stops training processes; registered as an app service."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        entry: Sequence[str] = DEFAULT_ENTRY,
        poll_interval: float = 0.5,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.entry = tuple(entry)
        self.poll_interval = poll_interval
        self._children: dict[str, _Child] = {}
        self._orphans: dict[str, _Orphan] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ service life cycle

    async def start(self) -> None:
        self.settings.runs_path.mkdir(parents=True, exist_ok=True)
        if not self.storage.is_open:
            self.storage.open()
        self._recover()
        self._wake = asyncio.Event()
        self._event_loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._poll_forever(), name="entrodrop-job-runner")

    async def stop(self) -> None:
        """Stop polling; running children get SIGTERM (they checkpoint) and become `interrupted`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for child in self._children.values():
            child.shutdown = True
            launch.request_stop(child.process.pid, child.run_dir)
        deadline = time.monotonic() + self.settings.cancel_grace_s
        while self._children and time.monotonic() < deadline:
            self._reap()
            await asyncio.sleep(0.1)
        for child in self._children.values():
            signal_tree(child.process.pid, signal.SIGKILL)
        deadline = time.monotonic() + KILLED_WAIT_S
        while self._children and time.monotonic() < deadline:
            self._reap()
            await asyncio.sleep(0.05)
        # Anything left could not be recorded (a full disk): the next start's recovery does it.
        self.storage.close()

    def run_dir(self, run_id: str) -> Path:
        return self.settings.runs_path / run_id

    # ------------------------------------------------------------ actions

    def submit(
        self, config: RunConfig, launcher: Launcher | None = None, group_id: str | None = None
    ) -> RunRecord:
        """Queue a run: its folder and config.json are written before anything is launched."""
        run_id = rf.new_run_id()
        while self.storage.get_run(run_id) is not None:
            run_id = rf.new_run_id()
        run_dir = self.run_dir(run_id)
        run_dir.mkdir(parents=True)
        rf.RunFolder(run_dir).write_config(config)
        now = time.time()
        record = RunRecord(
            id=run_id,
            created_at=now,
            queued_at=now,
            updated_at=now,
            status="queued",
            config=config.model_dump(mode="json"),
            launcher=(launcher or Launcher()).model_dump(),
            group_id=group_id,
            total_steps=config.max_steps,
        )
        self.storage.create_run(record)
        self._poke()
        return record

    def get(self, run_id: str) -> RunRecord:
        run = self.storage.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    def evaluate(self, run_id: str, request: dict[str, Any]) -> RunRecord:
        """Queue a benchmark of a finished run (its final model, and its best checkpoint): it
        waits in the one queue as `queued`, runs as `running` (stage "benchmarks") and ends
        `succeeded` again, its training untouched, whatever happens to the benchmark."""
        run = self.get(run_id)
        if run.status != "succeeded":
            raise RunConflict(f"run {run_id} is {run.status}: only a finished run is evaluated")
        run_dir = self.run_dir(run_id)
        if rf.run_model_dir(run_dir) is None:
            raise RunConflict(f"run {run_id} kept no model to evaluate (metrics only)")
        rf.write_json_atomic(run_dir / rf.EVALUATE, request)  # what the child will score
        self.storage.update_run(
            run_id, status="queued", queued_at=time.time(), finished_at=None, error=None
        )
        self._poke()
        return self.get(run_id)

    def cancel(self, run_id: str) -> RunRecord:
        """Queued: cancelled at once. Running: STOP file + SIGTERM, SIGKILL after the grace."""
        run = self.get(run_id)
        if run.status == "queued" and (self.run_dir(run_id) / rf.EVALUATE).is_file():
            (self.run_dir(run_id) / rf.EVALUATE).unlink(missing_ok=True)  # its training stands
            self.storage.update_run(run_id, status="succeeded", finished_at=time.time())
        elif run.status == "queued":
            self.storage.update_run(run_id, status="cancelled", finished_at=time.time())
        elif run.status == "running":
            self.storage.update_run(run_id, cancel_requested=True)
            child = self._children.get(run_id)
            if child is not None:
                child.process.stop(self.settings.cancel_grace_s)
        else:
            raise RunConflict(f"run {run_id} is {run.status}; only queued or running runs cancel")
        self._poke()
        return self.get(run_id)

    def resume(self, run_id: str, restart: bool = False) -> RunRecord:
        """Queue a stopped run again: from its complete checkpoint, or (restart) from step 0.

        A resume needs a checkpoint and a restart needs its absence, so the action a page offers
        is the one that happens; a run that never started (no attempt) offers neither.
        """
        run = self.get(run_id)
        if run.status not in RESUMABLE:
            verb = "restarted" if restart else "resumed"
            raise RunConflict(
                f"run {run_id} is {run.status}; only {', '.join(RESUMABLE)} runs can be {verb}"
            )
        if run.attempts == 0:
            raise RunConflict(f"run {run_id} never started; queue a new run like it instead")
        checkpoint = rf.latest_checkpoint(self.run_dir(run_id))
        if not restart and checkpoint is None:
            raise RunConflict(f"run {run_id} has no complete checkpoint to resume from; restart it")
        if restart and checkpoint is not None:
            raise RunConflict(f"run {run_id} has a checkpoint; resume it instead of restarting")
        spent = (run.finished_at - run.started_at) if run.started_at and run.finished_at else 0.0
        # Progress goes back to where the next attempt starts: the checkpoint, or step 0.
        step = rf.checkpoint_step(checkpoint) if checkpoint is not None else 0
        progress = step / run.total_steps if run.total_steps else 0.0
        self.storage.update_run(
            run_id,
            status="queued",
            queued_at=time.time(),
            resume=not restart,
            error=None,
            finished_at=None,
            cancel_requested=False,
            eta_s=None,
            step=step,
            progress=min(1.0, progress),
            prior_elapsed_s=run.prior_elapsed_s + max(0.0, spent),
        )
        self._poke()
        return self.get(run_id)

    def delete(self, run_id: str) -> None:
        """Remove a stopped run: its row, its metrics and its folder (never a queued or live one)."""
        run = self.get(run_id)
        if run.status in rf.ACTIVE or run_id in self._children or run_id in self._orphans:
            raise RunConflict(f"run {run_id} is {run.status}; cancel it before deleting it")
        self.storage.delete_run(run_id)
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # ------------------------------------------------------------ polling

    def _poke(self) -> None:
        """Wake the poll loop now (from any thread: asyncio.Event is not thread-safe)."""
        if self._wake is None or self._event_loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._event_loop:
            self._wake.set()
        else:
            self._event_loop.call_soon_threadsafe(self._wake.set)

    async def _poll_forever(self) -> None:
        assert self._wake is not None
        while True:
            try:
                self.tick()
            except Exception:  # one bad run folder must not stop the watching of the others
                log.exception("job runner poll failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            self._wake.clear()

    def tick(self) -> None:
        """One poll: ingest, mirror status, reap exits, enforce kill deadlines, launch from the queue."""
        now = time.monotonic()
        for run_id, child in list(self._children.items()):
            child.process.enforce(now)  # a kill deadline holds whatever the disk does
            with _retried_next_tick(run_id, "reading its progress"):
                self.storage.ingest_metrics(run_id, child.run_dir / rf.METRICS)
                self._mirror_status(run_id, child)
        self._reap()
        for run_id, orphan in list(self._orphans.items()):
            if process_alive(orphan.pid, orphan.run_dir):
                if now >= orphan.kill_at:
                    signal_tree(orphan.pid, signal.SIGKILL)
                continue
            with _retried_next_tick(run_id, "recording its end"):
                self._drain(run_id, orphan.run_dir)
                del self._orphans[run_id]
        self._launch_queued()

    def _mirror_status(self, run_id: str, child: _Child) -> None:
        path = child.run_dir / rf.STATUS
        try:
            stat = path.stat()
        except OSError:
            return
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen == child.status_seen:
            return
        child.status_seen = seen
        st = rf.read_status(child.run_dir, since=child.launched_at)
        if st is None:
            return
        changes: dict[str, object] = {}
        for key in ("step", "total_steps", "progress", "eta_s"):
            if isinstance(st.get(key), int | float) and not isinstance(st.get(key), bool):
                changes[key] = st[key]
        if "eta_s" in st and st["eta_s"] is None:  # no ETA now (starting): never a stale one
            changes["eta_s"] = None
        if "progress" in changes:
            changes["progress"] = min(1.0, max(0.0, float(changes["progress"])))  # type: ignore[arg-type]
        if changes:
            self.storage.update_run(run_id, **changes)

    def _drain(self, run_id: str, run_dir: Path) -> None:
        """Ingest every metric line left in the file (a backlog may span several reads)."""
        while self.storage.ingest_metrics(run_id, run_dir / rf.METRICS):
            pass

    def _reap(self) -> None:
        """Record the end of every child that has exited. A child leaves the table only once its
        end is written: a write that fails (a full disk) is tried again on the next tick, and
        meanwhile the run stays visibly running, not cancellable into nothing."""
        for run_id, child in list(self._children.items()):
            code = child.process.poll()
            if code is None:
                continue
            with _retried_next_tick(run_id, "recording its end"):
                self._drain(run_id, child.run_dir)
                child.status_seen = (0, 0, 0)
                self._mirror_status(run_id, child)
                self._finish(run_id, child, code)
                del self._children[run_id]

    def _finish(self, run_id: str, child: _Child, code: int) -> None:
        if child.evaluating:
            self._finish_evaluation(run_id, child, code)
            return
        run = self.get(run_id)
        status, error = launch.outcome(child.run_dir, child.process, code)
        if child.shutdown:
            status = "interrupted"
            error = "the server stopped during this run; resume it to continue"
        elif status == "failed" and run.cancel_requested:
            status, error = "cancelled", None
        changes: dict[str, object] = {
            "status": status,
            "exit_code": code,
            "finished_at": time.time(),
            "error": error,
            "eta_s": None,
        }
        if status == "succeeded":
            changes["progress"] = 1.0
        self.storage.update_run(run_id, **changes)
        log.info("run %s %s (exit code %s)", run_id, status, code)
        if status == "succeeded":
            processes = int(run.launcher.get("num_processes") or 1)
            wall = time.time() - run.started_at if run.started_at else None  # launch to exit
            with contextlib.suppress(OSError):  # the next estimate is a nicety, the status is not
                timings.remember(self.settings.home, child.run_dir, run.config, processes, wall)

    def _launch_queued(self) -> None:
        slots = self.settings.max_concurrent_runs - len(self._children) - len(self._orphans)
        if slots <= 0:
            return
        for run in self.storage.list_runs(statuses=["queued"]):
            if slots <= 0:
                break
            if run.id in self._orphans or run.id in self._children:
                continue  # an earlier process of this run is still shutting down
            self._launch(run)
            slots -= 1

    def child_env(self) -> dict[str, str]:
        """A training process's environment: this server's home and its dataset cap."""
        return launch.child_env(
            self.settings.home, {TEXT_BUDGET_ENV: str(self.settings.text_budget)}
        )

    def _finish_evaluation(self, run_id: str, child: _Child, code: int) -> None:
        """An evaluation's end: the run is `succeeded` again; a failure is its error line."""
        st = rf.read_status(child.run_dir, since=child.launched_at) or {}
        error = st.get("error") if isinstance(st.get("error"), str) else None
        if child.shutdown:
            error = "the server stopped during its evaluation; evaluate it again"
        elif code != 0 and error is None:
            error = f"evaluation failed: {launch.failure_message(child.run_dir, st, code)}"
        (child.run_dir / rf.EVALUATE).unlink(missing_ok=True)
        self.storage.update_run(
            run_id, status="succeeded", exit_code=code, finished_at=time.time(), error=error
        )
        self.storage.update_run(run_id, progress=1.0, eta_s=None, cancel_requested=False)
        log.info("run %s evaluated (exit code %s)", run_id, code)

    def _launch(self, run: RunRecord) -> None:
        run_dir = self.run_dir(run.id)
        evaluating = (run_dir / rf.EVALUATE).is_file()  # a finished run's benchmark (evaluate())
        checkpoint = rf.latest_checkpoint(run_dir) if run.resume and not evaluating else None
        # The child continues from this checkpoint (the same one: the same discovery); the new
        # attempt's rows start as the old attempt's up to it. Without one it starts afresh. An
        # evaluation adds its rows to the run's last attempt.
        carry = rf.checkpoint_step(checkpoint) if checkpoint is not None else None
        attempt = (
            run.attempts
            if evaluating
            else self.storage.start_attempt(run.id, run_dir / rf.METRICS, carry)
        )
        self.storage.update_run(
            run.id,
            status="running",
            started_at=time.time(),
            pid=None,
            exit_code=None,
            error=None,
            cancel_requested=False,
        )
        try:
            process = launch.start(
                run_dir,
                Launcher() if evaluating else Launcher(**run.launcher),
                checkpoint is not None,
                self.child_env(),
                attempt,
                self.entry,
                evaluate=evaluating,
            )
        except OSError as exc:
            self.storage.update_run(
                run.id,
                status="failed",
                error=f"cannot start training: {exc}",
                finished_at=time.time(),
            )
            return
        self._children[run.id] = _Child(process, evaluating=evaluating)
        self.storage.update_run(run.id, pid=process.pid, started_at=process.launched_at)
        log.info("run %s started: pid %s", run.id, process.pid)

    # ------------------------------------------------------------ recovery

    def _recover(self) -> None:
        """Runs left `running` by a dead server: finished ones keep their end, others interrupted."""
        for run in self.storage.list_runs(statuses=["running"]):
            run_dir = self.run_dir(run.id)
            self._drain(run.id, run_dir)
            pid = run.pid if process_alive(run.pid, run_dir) else find_orphan(run_dir)
            st = rf.read_status(run_dir, since=run.started_at or 0.0) or {}
            changes: dict[str, object] = {"finished_at": time.time(), "eta_s": None}
            if (run_dir / rf.EVALUATE).is_file():  # an evaluation: the training stands
                (run_dir / rf.EVALUATE).unlink(missing_ok=True)
                changes |= {"status": "succeeded", "progress": 1.0}
                changes["error"] = "the server stopped during its evaluation; evaluate it again"
            elif pid is None and st.get("status") in rf.FINAL:
                # It ended while no server watched: its own final status is the truth.
                changes["status"] = st["status"]
                changes["error"] = st.get("error") if st["status"] == "failed" else None
                if st["status"] == "succeeded":
                    changes["progress"] = 1.0
            else:
                changes["status"] = "interrupted"
                changes["error"] = "the server stopped during this run; resume it to continue"
            if pid is not None:
                # Still training for a server that no longer watches it: stop it cleanly (it
                # checkpoints); the new server cannot wait() on it, so it is polled by pid.
                launch.request_stop(pid, run_dir)
                deadline = time.monotonic() + self.settings.cancel_grace_s
                self._orphans[run.id] = _Orphan(pid=pid, run_dir=run_dir, kill_at=deadline)
            self.storage.update_run(run.id, **changes)
            log.warning("run %s was left running by a dead server: %s", run.id, changes["status"])
