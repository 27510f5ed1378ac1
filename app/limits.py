"""Request body caps: a 413 (the house error body) before an oversized body is read or spooled."""

from __future__ import annotations

from typing import Any

from app.errors import send_error

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
            await _refuse(scope, receive, send, cap)
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
                        await _refuse(scope, receive, send, cap)
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


async def _refuse(scope: Scope, receive: Any, send: Any, cap: int) -> None:
    detail = f"the request body is larger than the {cap} bytes this endpoint accepts"
    # The connection closes: the rest of the body is never read.
    await send_error(scope, receive, send, 413, detail, headers={"Connection": "close"})
