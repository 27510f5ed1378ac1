"""One server per home folder: an OS lock on <home>/server.lock, taken before any recovery runs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "server.lock"


class HomeLocked(RuntimeError):
    """Another live server holds this home folder; the message names it."""


@dataclass
class HomeLock:
    """A held lock: the open file whose flock the OS releases when this process ends."""

    home: Path
    fd: int


# Locks this process holds, by resolved home: `serve` takes the lock before uvicorn binds and the
# app's lifespan takes it again (a second flock on a new file in the same process would fail).
_held: dict[Path, HomeLock] = {}
_guard = threading.Lock()


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the file (pid and address)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {int(info['pid'])}, http://{info['host']}:{int(info['port'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return "still starting"  # it has the lock but has not written its details yet


def hold_home(home: Path, host: str, port: int) -> HomeLock:
    """Take the home's lock for this process (again: the same lock), or raise HomeLocked at once.

    The lock is an flock: the OS drops it when the holder exits, even on SIGKILL, so a stale
    file never blocks a new server.
    """
    key = Path(home).expanduser().resolve()
    with _guard:
        if key in _held:
            return _held[key]
        fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise HomeLocked(
                f"another EntroDrop Studio server ({holder}) is using the home folder {key}; "
                "stop it first, or set ENTRODROP_HOME to another folder"
            ) from None
        info = {"pid": os.getpid(), "host": host, "port": port, "started_at": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        lock = _held[key] = HomeLock(key, fd)
        return lock


def release_home(lock: HomeLock) -> None:
    """Give the lock back (closing the file releases the flock)."""
    with _guard:
        if _held.get(lock.home) is lock:
            del _held[lock.home]
            os.close(lock.fd)


@contextlib.contextmanager
def holding_home(home: Path, host: str, port: int) -> Iterator[HomeLock]:
    """Hold the lock for a block; a lock this process already held (serve's) stays held after."""
    key = Path(home).expanduser().resolve()
    with _guard:
        already = key in _held
    lock = hold_home(home, host, port)
    try:
        yield lock
    finally:
        if not already:
            release_home(lock)


class HomeLockService:
    """The lock as an app service: the first to start (before recovery), the last to stop."""

    def __init__(self, home: Path, host: str, port: int) -> None:
        self.home, self.host, self.port = home, host, port
        self._held: contextlib.ExitStack | None = None

    async def start(self) -> None:
        stack = contextlib.ExitStack()
        stack.enter_context(holding_home(self.home, self.host, self.port))  # HomeLocked: no start
        self._held = stack

    async def stop(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None


class HomeUnusable(RuntimeError):
    """The home folder cannot be created or written (read-only, not a folder, disk full)."""


def check_home(home: Path) -> None:
    """Create the home folder if needed and prove it writable, with a message for a person."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise HomeUnusable(
            f"the home folder {home} is not writable ({exc.strerror or exc}); "
            "set ENTRODROP_HOME to a folder this user can write"
        ) from exc
