"""Model jobs tied to their client: NDJSON progress streams, and a cancel when the client goes.

A streamed answer is one JSON object per line: `queued` {ahead}, `started` {waited_s},
`progress` {stage, done, total, elapsed_s, eta_s} (generation: `token` {token}), then `result`
{result} or `error` {status, detail}. A plain request gets the result as JSON, as before. Either
way a client that disconnects cancels its job: a waiting job is dropped unrun, a running one
stops at its next chunk (or token).

The asyncio view of the worker's future is cancelled whenever its client leaves first: left
pending, it would receive the job's JobCancelled later with nobody to read it, and asyncio would
log "Future exception was never retrieved" when it is collected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import Future
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from app.errors import LIBRARY_STATUS, AppError
from app.score_job import JobCancelled, ScoreJob

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"


def wants_stream(request: Request, stream: bool) -> bool:
    """`?stream=1` or `Accept: application/x-ndjson` asks for progress events."""
    return stream or NDJSON in request.headers.get("accept", "")


async def until_disconnect(receive: Receive) -> None:
    """Return when the client has gone (the request body was already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def error_event(exc: BaseException) -> dict[str, Any]:
    """An error as a stream event, with the status a plain request would have answered."""
    if isinstance(exc, AppError):
        return {"event": "error", "status": exc.status_code, "detail": exc.detail}
    for kind, status in LIBRARY_STATUS.items():
        if isinstance(exc, kind):
            return {"event": "error", "status": status, "detail": str(exc)}
    log.error("scoring failed", exc_info=exc)
    return {"event": "error", "status": 500, "detail": "internal server error"}


async def plain(request: Request, future: Future[bytes], job: ScoreJob) -> Response:
    """Wait for the job's JSON; cancel the job if the client leaves first."""
    result = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(until_disconnect(request.receive))
    try:
        waits: set[asyncio.Future[Any]] = {result, gone}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not result.done():
            job.cancel()
            result.cancel()  # a job still waiting leaves the queue now
        gone.cancel()
    if result.cancelled():
        raise JobCancelled("the client went away")
    return Response(result.result(), media_type="application/json")


class JobStream(Response):
    """An NDJSON answer that follows a job; it cancels the job when the client goes away."""

    media_type = NDJSON

    def __init__(self, future: Future[bytes], job: ScoreJob) -> None:
        super().__init__(headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        # A stream has no length: drop the Content-Length: 0 of the empty body.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.future, self.job = future, job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        gone = asyncio.ensure_future(until_disconnect(receive))
        result = asyncio.wrap_future(self.future)
        try:
            await self._pump(send, gone, result)
        except OSError:  # the connection broke while we wrote to it
            pass
        finally:
            gone.cancel()
            if not result.done():
                self.job.cancel()  # a running job stops at its next chunk
                result.cancel()  # a waiting one leaves the queue; nothing is left to retrieve

    async def _pump(
        self, send: Send, gone: asyncio.Future[None], result: asyncio.Future[bytes]
    ) -> None:
        assert self.job.events is not None
        while True:
            next_event = asyncio.ensure_future(self.job.events.get())
            waits: set[asyncio.Future[Any]] = {next_event, gone, result}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                next_event.cancel()
                return
            if next_event.done():
                await self._line(send, json.dumps(next_event.result()).encode())
                continue
            next_event.cancel()
            break
        while not self.job.events.empty():  # progress the worker sent just before it finished
            await self._line(send, json.dumps(self.job.events.get_nowait()).encode())
        exc = result.exception()
        if exc is None:
            line = b'{"event":"result","result":' + result.result() + b"}"
        else:
            line = json.dumps(error_event(exc)).encode()
        await self._line(send, line)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _line(send: Send, line: bytes) -> None:
        await send({"type": "http.response.body", "body": line + b"\n", "more_body": True})
