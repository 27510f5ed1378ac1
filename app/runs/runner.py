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
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.errors import RunConflict, RunNotFound
from app.runs import cost
from app.runs.process import (
    DEFAULT_ENTRY,
    Launcher,
    child_argv,
    find_orphan,
    process_alive,
    signal_tree,
)
from app.runs.storage import RunRecord, Storage
from app.settings import Settings
from entrodrop import runfolder as rf
from entrodrop.config import RunConfig
from entrodrop.data import TEXT_BUDGET_ENV

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]  # the repository: children import this checkout
RESUMABLE = ("interrupted", "cancelled", "failed")


@dataclass
class _Child:
    """A training process this server started."""

    proc: subprocess.Popen[bytes]
    run_dir: Path
    launched_at: float  # wall clock: status.json older than this is from an earlier attempt
    kill_at: float | None = None  # SIGKILL deadline after a SIGTERM
    shutdown: bool = False  # stopped because the server stops: the run becomes `interrupted`
    status_mtime: float = 0.0


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
            self._terminate(child.proc.pid, child.run_dir)
        deadline = time.monotonic() + self.settings.cancel_grace_s
        while self._children and time.monotonic() < deadline:
            self._reap()
            await asyncio.sleep(0.1)
        for child in self._children.values():
            signal_tree(child.proc.pid, signal.SIGKILL)
        while self._children:
            self._reap()
            await asyncio.sleep(0.05)
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
        (run_dir / rf.CONFIG).write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
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

    def cancel(self, run_id: str) -> RunRecord:
        """Queued: cancelled at once. Running: STOP file + SIGTERM, SIGKILL after the grace."""
        run = self.get(run_id)
        if run.status == "queued":
            self.storage.update_run(run_id, status="cancelled", finished_at=time.time())
        elif run.status == "running":
            self.storage.update_run(run_id, cancel_requested=True)
            child = self._children.get(run_id)
            if child is not None and child.kill_at is None:
                self._terminate(child.proc.pid, child.run_dir)
                child.kill_at = time.monotonic() + self.settings.cancel_grace_s
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
            self.storage.ingest_metrics(run_id, child.run_dir / rf.METRICS)
            self._mirror_status(run_id, child)
            if child.kill_at is not None and now >= child.kill_at:
                signal_tree(child.proc.pid, signal.SIGKILL)
                child.kill_at = None
        self._reap()
        for run_id, orphan in list(self._orphans.items()):
            if process_alive(orphan.pid, orphan.run_dir):
                if now >= orphan.kill_at:
                    signal_tree(orphan.pid, signal.SIGKILL)
                continue
            self._drain(run_id, orphan.run_dir)
            del self._orphans[run_id]
        self._launch_queued()

    def _mirror_status(self, run_id: str, child: _Child) -> None:
        path = child.run_dir / rf.STATUS
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        if mtime == child.status_mtime:
            return
        child.status_mtime = mtime
        st = rf.read_status(child.run_dir, since=child.launched_at)
        if st is None:
            return
        changes: dict[str, object] = {}
        for key in ("step", "total_steps", "progress", "eta_s"):
            if isinstance(st.get(key), int | float) and not isinstance(st.get(key), bool):
                changes[key] = st[key]
        if "progress" in changes:
            changes["progress"] = min(1.0, max(0.0, float(changes["progress"])))  # type: ignore[arg-type]
        if changes:
            self.storage.update_run(run_id, **changes)

    def _drain(self, run_id: str, run_dir: Path) -> None:
        """Ingest every metric line left in the file (a backlog may span several reads)."""
        while self.storage.ingest_metrics(run_id, run_dir / rf.METRICS):
            pass

    def _reap(self) -> None:
        for run_id, child in list(self._children.items()):
            code = child.proc.poll()
            if code is None:
                continue
            del self._children[run_id]
            self._drain(run_id, child.run_dir)
            child.status_mtime = 0.0
            self._mirror_status(run_id, child)
            self._finish(run_id, child, code)

    def _finish(self, run_id: str, child: _Child, code: int) -> None:
        run = self.get(run_id)
        st = rf.read_status(child.run_dir, since=child.launched_at) or {}
        final = st.get("status")
        error: str | None = None
        if child.shutdown:
            status = "interrupted"
            error = "the server stopped during this run; resume it to continue"
        elif final == "succeeded" and code == 0:
            status = "succeeded"
        elif run.cancel_requested or final == "cancelled":
            status = "cancelled"
        else:
            status = "failed"
            error = self._failure_message(child.run_dir, st, code)
        changes: dict[str, object] = {
            "status": status,
            "exit_code": code,
            "finished_at": time.time(),
            "error": error,
            "eta_s": None,
        }
        if status == "succeeded":
            changes["progress"] = 1.0
            processes = int(run.launcher.get("num_processes") or 1)
            cost.remember(self.settings.home, child.run_dir, run.config, processes)
        self.storage.update_run(run_id, **changes)
        log.info("run %s %s (exit code %s)", run_id, status, code)

    @staticmethod
    def _failure_message(run_dir: Path, st: dict[str, object], code: int) -> str:
        """The child's own message (status.json), else the last error line of its output."""
        error = st.get("error") if isinstance(st.get("error"), str) else None
        if not error and code != 0:
            tail = rf.tail_lines(run_dir / rf.OUTPUT, 60) or rf.tail_lines(run_dir / rf.LOG, 60)
            error = rf.error_from_lines(tail)
        if code < 0:  # killed by a signal: say so first, it is the likelier cause
            return f"{rf.describe_exit(code)}: {error}" if error else rf.describe_exit(code)
        if error:
            return str(error)
        if code != 0:
            return rf.describe_exit(code)
        return "the training process exited without reporting a final status"

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

    def _launch(self, run: RunRecord) -> None:
        run_dir = self.run_dir(run.id)
        # A STOP file from an earlier attempt would stop this one at once.
        (run_dir / rf.STOP).unlink(missing_ok=True)
        checkpoint = rf.latest_checkpoint(run_dir) if run.resume else None
        resume = checkpoint is not None
        # The child continues from this checkpoint (the same one: the same discovery); the new
        # attempt's rows start as the old attempt's up to it. Without one it starts afresh.
        carry = rf.checkpoint_step(checkpoint) if checkpoint is not None else None
        attempt = self.storage.start_attempt(run.id, run_dir / rf.METRICS, carry)
        argv = child_argv(run_dir, Launcher(**run.launcher), resume, self.entry)
        launched_at = time.time()
        self.storage.update_run(
            run.id,
            status="running",
            started_at=launched_at,
            pid=None,
            exit_code=None,
            error=None,
            cancel_requested=False,
        )
        out: IO[bytes] = (run_dir / rf.OUTPUT).open("ab")
        try:
            out.write(f"{rf.ATTEMPT_HEADER}{attempt}: {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(run_dir),
                env=self._child_env(),
                start_new_session=True,  # its own process group: signals reach all its workers
            )
        except OSError as exc:
            self.storage.update_run(
                run.id,
                status="failed",
                error=f"cannot start training: {exc}",
                finished_at=time.time(),
            )
            return
        finally:
            out.close()  # the child holds its own copy of the descriptor
        self._children[run.id] = _Child(proc=proc, run_dir=run_dir, launched_at=launched_at)
        self.storage.update_run(run.id, pid=proc.pid)
        log.info("run %s started: pid %s", run.id, proc.pid)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ENTRODROP_HOME"] = str(self.settings.home)  # run:<id> specs resolve in this home
        env["PYTHONUNBUFFERED"] = "1"
        env[TEXT_BUDGET_ENV] = str(self.settings.text_budget)  # the child's dataset cap
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        return env

    def _terminate(self, pid: int, run_dir: Path) -> None:
        # Both ways the contract offers: SIGTERM reaches a child that is still loading; the STOP
        # file reaches every accelerate worker even if a launcher swallows the signal. Signal
        # first: a child that saw STOP and is already exiting may have reset its handlers.
        signal_tree(pid, signal.SIGTERM)
        with contextlib.suppress(OSError):
            (run_dir / rf.STOP).touch()

    # ------------------------------------------------------------ recovery

    def _recover(self) -> None:
        """Runs left `running` by a dead server: finished ones keep their end, others interrupted."""
        for run in self.storage.list_runs(statuses=["running"]):
            run_dir = self.run_dir(run.id)
            self._drain(run.id, run_dir)
            pid = run.pid if process_alive(run.pid, run_dir) else find_orphan(run_dir)
            st = rf.read_status(run_dir, since=run.started_at or 0.0) or {}
            changes: dict[str, object] = {"finished_at": time.time(), "eta_s": None}
            if pid is None and st.get("status") in rf.FINAL:
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
                self._terminate(pid, run_dir)
                deadline = time.monotonic() + self.settings.cancel_grace_s
                self._orphans[run.id] = _Orphan(pid=pid, run_dir=run_dir, kill_at=deadline)
            self.storage.update_run(run.id, **changes)
            log.warning("run %s was left running by a dead server: %s", run.id, changes["status"])
