"""One model request as the worker sees it: a cancel flag checked between chunks, its queue wait,
and progress events (tokens done / total, ETA) handed to the request's event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from app.errors import AppError

Event = dict[str, Any]


class JobCancelled(AppError):
    """The client went away (or pressed Cancel): the job stops at the next chunk, or never runs."""

    status_code = 499  # nginx's "client closed request"; nobody is left to read it


class ScoreJob:
    """Shared by the request (cancel, read events) and the worker thread (check, progress)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, rate: float | None = None):
        self._cancel = threading.Event()
        self._loop = loop
        self.events: asyncio.Queue[Event] | None = asyncio.Queue() if loop else None
        self.rate = rate  # tokens/s measured earlier on this machine: the ETA before any chunk
        self.stage = ""  # "A" / "B" while a compare scores one model then the other
        self.done = 0
        self.total = 0
        self._start = 0.0
        self._queued_at = time.perf_counter()
        self.waited_s: float | None = None  # seconds in the queue, set when the worker takes it

    # ------------------------------------------------------------ the request's side

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # ------------------------------------------------------------ the worker's side

    def check(self) -> None:
        """Raise JobCancelled once the job was cancelled (called between chunks)."""
        if self._cancel.is_set():
            raise JobCancelled("scoring was cancelled: the client went away or pressed Cancel")

    def emit(self, event: Event) -> None:
        """Hand an event to the request's loop (thread-safe; dropped when nobody streams)."""
        if self._loop is not None and self.events is not None:
            self._loop.call_soon_threadsafe(self.events.put_nowait, event)

    def start(self) -> None:
        """The worker takes the job: its queue wait ends here (the `started` event says how long)."""
        self.check()
        self.waited_s = round(time.perf_counter() - self._queued_at, 4)
        self.emit({"event": "started", "waited_s": self.waited_s})

    def begin(self, stage: str = "") -> None:
        """A new scoring pass starts (compare has two): its clock and counters restart."""
        self.stage, self.done, self.total = stage, 0, 0
        self._start = time.perf_counter()

    def progress(self, done: int, total: int) -> None:
        """entrodrop.score's progress callback: check for cancel, then report done / total."""
        self.check()
        if not self._start:
            self._start = time.perf_counter()
        self.done, self.total = done, total
        elapsed = time.perf_counter() - self._start
        rate = done / elapsed if done and elapsed > 0 else self.rate
        eta = (total - done) / rate if rate else None
        self.emit(
            {
                "event": "progress",
                "stage": self.stage,
                "done": done,
                "total": total,
                "elapsed_s": round(elapsed, 3),
                "eta_s": None if eta is None else round(eta, 2),
            }
        )
