"""GET /api/runs/{id}/events: a run's live updates as server-sent events.

Each tick reads SQLite and the run folder in a worker thread (never in the event loop) and sends
only what changed: `metrics` (new rows, id = row id), `status`, `log`; `end` once the run is over.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from app.runs import views
from app.runs.runner import JobRunner
from entrodrop import runfolder as rf
from entrodrop.runfolder import ACTIVE

# A stream ends after this and EventSource reconnects (with Last-Event-ID): a server that is
# shutting down waits for open responses, so no stream may hold it for long.
SSE_LIFETIME_S = 15.0
SSE_INTERVAL_S = 1.0
MAX_ROW_ID = 2**63 - 1  # SQLite's largest INTEGER: a larger cursor is an error, not an overflow


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
    return {
        "rows": storage.metrics(run_id, after_id=after),
        "status": views.run_summary(runner, run),
        "log": rf.tail_lines(run_dir / rf.LOG, 60),
        "output": rf.tail_lines(run_dir / rf.OUTPUT, 40) if run.status == "failed" else [],
        "active": run.status in ACTIVE,
        "run_status": run.status,
    }


async def stream(
    request: Request, runner: JobRunner, run_id: str, after: int
) -> AsyncIterator[str]:
    """metrics (new rows), status (when it changes), log (when it grows); `end` once finished."""
    started = time.monotonic()
    last_status = last_log = None
    yield "retry: 500\n\n"
    while True:
        snap = await asyncio.to_thread(snapshot, runner, run_id, after)
        if snap is None:
            return
        if snap["rows"]:
            after = max(r["id"] for r in snap["rows"])
            yield sse("metrics", snap["rows"], after)
        # ETA and elapsed time change every tick: only a real change is worth an event.
        status_key = json.dumps(
            {k: v for k, v in snap["status"].items() if k not in ("eta_s", "elapsed_s")}
        )
        if status_key != last_status:
            last_status = status_key
            yield sse("status", snap["status"])
        if (snap["log"], snap["output"]) != last_log:
            last_log = (snap["log"], snap["output"])
            yield sse("log", {"log": snap["log"], "output": snap["output"]})
        if not snap["active"]:
            yield sse("end", {"status": snap["run_status"]})
            return
        if time.monotonic() - started > SSE_LIFETIME_S or await request.is_disconnected():
            return
        await asyncio.sleep(SSE_INTERVAL_S)
