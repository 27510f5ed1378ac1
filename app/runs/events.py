"""GET /api/runs/{id}/events: a run's live updates as server-sent events.

One feed per watched run reads SQLite and the run folder once per tick, in a worker thread (never
in the event loop), and every stream of that run takes its events from the feed: 200 open pages
cost one read per second, not 200. Each stream sends only what changed for it: `metrics` (new
rows, id = row id), `status`, `log`; `end` once the run is over. Streams beyond
settings.max_event_streams get 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from app.errors import AppError
from app.runs import views
from app.runs.runner import JobRunner
from entrodrop import runfolder as rf
from entrodrop.runfolder import ACTIVE

SSE_INTERVAL_S = 1.0
log = logging.getLogger(__name__)
MAX_ROW_ID = 2**63 - 1  # SQLite's largest INTEGER: a larger cursor is an error, not an overflow
STREAMS_RETRY_AFTER_S = 5
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class TooManyStreams(AppError):
    """More live-update streams than settings.max_event_streams."""

    status_code = 503


def start_cursor(last_event_id: str, after: int) -> int:
    """Where a (re)connecting stream starts: Last-Event-ID when it is a valid row id."""
    # Only a hint: ASCII digits in range, else the query's cursor ("²".isdigit() is True).
    valid = last_event_id.isascii() and last_event_id.isdigit()
    return int(last_event_id) if valid and int(last_event_id) <= MAX_ROW_ID else after


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


def snapshot(runner: JobRunner, run_id: str, after: int) -> dict[str, Any] | None:
    """Everything one tick may send (blocking reads: called in a worker thread); None: gone."""
    storage = runner.storage
    if not storage.is_open:
        return None
    run = storage.get_run(run_id)
    if run is None:
        return None
    run_dir = runner.run_dir(run_id)
    status = views.run_summary(runner, run).model_dump(mode="json")
    log_lines = rf.tail_lines(run_dir / rf.LOG, 60)
    output = rf.tail_lines(run_dir / rf.OUTPUT, 40) if run.status == "failed" else []
    # ETA and elapsed time change every tick: only a real change is worth an event.
    ticking = ("eta_s", "elapsed_s", "stage_eta_s")  # counted down by the page between events
    status_key = json.dumps({k: v for k, v in status.items() if k not in ticking})
    return {
        "rows": storage.metrics(run_id, after_id=after),
        "status_key": status_key,
        "status_event": sse("status", status),
        "log_key": (log_lines, output),
        "log_event": sse("log", {"log": log_lines, "output": output}),
        "active": run.status in ACTIVE,
        "end_event": sse("end", {"status": run.status}),
    }


@dataclass
class RunFeed:
    """The latest snapshot of one run and every metric row read while someone watches it."""

    run_id: str
    subscribers: int = 0
    snap: dict[str, Any] | None = None
    gone: bool = False
    version: int = 0
    cursor: int = 0  # the highest row id read
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    batch_max: list[int] = field(default_factory=list)  # each batch's highest id, ascending
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def rows_after(self, cursor: int) -> list[dict[str, Any]]:
        """Rows with an id above `cursor` (batches before it are skipped by bisection)."""
        first = bisect.bisect_right(self.batch_max, cursor)
        return [r for batch in self.batches[first:] for r in batch if r["id"] > cursor]

    def publish(self, snap: dict[str, Any] | None) -> None:
        """Keep a tick's snapshot and wake every stream waiting on this feed."""
        if snap is None:
            self.gone = True
        else:
            rows = snap.pop("rows")
            if rows:
                self.cursor = max(self.cursor, max(r["id"] for r in rows))
                self.batches.append(rows)
                self.batch_max.append(self.cursor)
            self.snap = snap
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()  # the next tick's; waiters hold the one just set

    async def next(self, seen: int, timeout: float) -> None:
        """Wait until a version newer than `seen` is published (or `timeout` passes)."""
        if self.version > seen:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)


class EventFeeds:
    """The feeds of the runs being watched, one poller task each, and the count of streams."""

    def __init__(self, runner: JobRunner, max_streams: int, lifetime: float) -> None:
        self.runner = runner
        self.max_streams = max_streams
        self.lifetime = lifetime
        # The open streams' generators: one that ends, or is dropped unstarted (a client gone
        # before its response began), leaves the set by itself, so the count never leaks.
        self.open: weakref.WeakSet[AsyncIterator[str]] = weakref.WeakSet()
        self._feeds: dict[str, RunFeed] = {}

    def check_room(self) -> None:
        """TooManyStreams (503) when max_streams are open."""
        if len(self.open) >= self.max_streams:
            raise TooManyStreams(
                f"{len(self.open)} live-update streams are open (at most {self.max_streams}); "
                "close some pages or try again shortly",
                retry_after=STREAMS_RETRY_AFTER_S,
            )

    @contextlib.contextmanager
    def subscribe(self, run_id: str) -> Iterator[RunFeed]:
        """The run's feed (its poller started by the first stream, stopped after the last)."""
        feed = self._feeds.get(run_id)
        if feed is None:
            feed = self._feeds[run_id] = RunFeed(run_id)
            feed.task = asyncio.create_task(self._poll(feed), name=f"events-{run_id}")
        feed.subscribers += 1
        try:
            yield feed
        finally:
            feed.subscribers -= 1

    async def _poll(self, feed: RunFeed) -> None:
        try:
            while feed.subscribers > 0:
                snap = await asyncio.to_thread(snapshot, self.runner, feed.run_id, feed.cursor)
                feed.publish(snap)
                if snap is None or not snap["active"]:
                    return  # the last snapshot stays for streams still reading it
                await asyncio.sleep(SSE_INTERVAL_S)
        except Exception:  # its streams end (and their pages reconnect) instead of hanging
            log.exception("live updates of run %s failed", feed.run_id)
            feed.publish(None)
        finally:
            if self._feeds.get(feed.run_id) is feed:
                del self._feeds[feed.run_id]


def feeds_of(request: Request, runner: JobRunner) -> EventFeeds:
    """The app's EventFeeds, made on first use (one per app, like its other services)."""
    state = request.app.state
    feeds: EventFeeds | None = getattr(state, "event_feeds", None)
    if feeds is None or feeds.runner is not runner:
        settings = runner.settings
        feeds = EventFeeds(runner, settings.max_event_streams, settings.event_stream_lifetime_s)
        state.event_feeds = feeds
    return feeds


async def stream(
    feeds: EventFeeds, request: Request, run_id: str, after: int
) -> AsyncIterator[str]:
    """metrics (new rows), status (when it changes), log (when it grows); `end` once finished."""
    started = time.monotonic()
    last_status = last_log = None
    seen = 0
    yield "retry: 500\n\n"
    with feeds.subscribe(run_id) as feed:
        while True:
            await feed.next(seen, SSE_INTERVAL_S * 2)
            if feed.gone:
                return
            seen, snap = feed.version, feed.snap
            if snap is not None:
                rows = feed.rows_after(after)
                if rows:
                    after = max(r["id"] for r in rows)
                    yield sse("metrics", rows, after)
                if snap["status_key"] != last_status:
                    last_status = snap["status_key"]
                    yield snap["status_event"]
                if snap["log_key"] != last_log:
                    last_log = snap["log_key"]
                    yield snap["log_event"]
                if not snap["active"]:
                    yield snap["end_event"]
                    return
            # A stream ends after its lifetime and EventSource reconnects (with Last-Event-ID):
            # a server that is shutting down waits for open responses, so none may hold it long.
            if time.monotonic() - started > feeds.lifetime or await request.is_disconnected():
                return


def response(request: Request, runner: JobRunner, run_id: str, after: int) -> StreamingResponse:
    """The event stream of a run (TooManyStreams, 503, when the server has enough open)."""
    feeds = feeds_of(request, runner)
    feeds.check_room()
    body = stream(feeds, request, run_id, after)
    feeds.open.add(body)
    return StreamingResponse(body, media_type="text/event-stream", headers=HEADERS)
