"""Request body caps: a 413 with a JSON `detail` before an oversized body is read or spooled."""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    """Pure ASGI. A declared Content-Length over the path's cap is refused unread; a streamed
    body is refused as soon as it passes the cap, and the app then sees a client that left."""

    def __init__(self, app: Any, default_cap: int, caps: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_cap = default_cap
        self.caps = caps or {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.caps.get(scope.get("path", ""), self.default_cap)
        declared = _content_length(scope)
        if declared is not None and declared > cap:
            await self._refuse(send, cap)
            return
        state = {"received": 0, "refused": False, "started": False}

        async def limited_receive() -> Message:
            if state["refused"]:
                return {"type": "http.disconnect"}
            message: Message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > cap:
                    state["refused"] = True
                    if not state["started"]:
                        await self._refuse(send, cap)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return  # the 413 was the answer; whatever the app says after it is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise  # a real error; one caused by the cut-off body is already answered

    @staticmethod
    async def _refuse(send: Any, cap: int) -> None:
        detail = f"the request body is larger than the {cap} bytes this endpoint accepts"
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
