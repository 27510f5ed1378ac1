"""Access token check for every page and API call when the server is shared (ENTRODROP_TOKEN):
the token leaves the URL by a redirect and never reaches the access log; wrong ones are throttled."""

from __future__ import annotations

import html
import ipaddress
import json
import logging
import re
import secrets
import time
from collections import deque
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

COOKIE = "entrodrop_token"
# Open without a token: the health probe (Docker HEALTHCHECK) and static assets of the login page.
OPEN_PREFIXES = ("/api/health", "/static/", "/favicon.ico")

# Wrong tokens a client may present per window before it is told to wait (429, Retry-After).
MAX_FAILURES = 10
FAILURE_WINDOW_S = 60.0
MAX_TRACKED_CLIENTS = 10_000  # a flood of addresses cannot grow the table without bound

Scope = dict[str, Any]


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (the only ones served without a token)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _presented_token(scope: Scope) -> tuple[str | None, bool]:
    """(token from header, query or cookie; whether it came from the query string)."""
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
    }
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    if "x-entrodrop-token" in headers:
        return headers["x-entrodrop-token"].strip(), False
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], True
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is simply no token
        return None, False
    morsel = cookie.get(COOKIE)
    return (morsel.value if morsel else None), False


LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>EntroDrop Studio: access token</title><link rel="stylesheet" href="/static/common/style.css"></head>
<body><main><div class="card" style="max-width:32rem;margin:4rem auto">
<h1>Access token needed</h1>
<p>This EntroDrop Studio server is shared; enter the token it was started with
(<code>ENTRODROP_TOKEN</code>).</p>
<form method="get" action="{path}"><label for="token">Token</label>
<input id="token" name="token" type="password" autofocus required style="width:100%">
<p><button type="submit">Open</button></p></form>{error}</div></main></body></html>"""


class TokenMiddleware:
    """Pure ASGI middleware (streams such as SSE pass through untouched)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token
        self.throttle = Throttle()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        presented, from_query = _presented_token(scope)
        client = (scope.get("client") or ("?", 0))[0]
        if presented is not None:
            wait = self.throttle.wait_s(client)
            if wait and scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4429})
                return
            if wait:
                await _send_json(send, 429, "too many wrong access tokens; wait", wait)
                return
        ok = presented is not None and secrets.compare_digest(
            presented.encode("utf-8", "surrogateescape"), self.token.encode()
        )
        if not ok:
            if presented is not None:
                self.throttle.failed(client)
            await self._refuse(scope, send, path, wrong=presented is not None)
            return
        if from_query and scope.get("method") in ("GET", "HEAD"):
            # Keep the token out of the address bar, history and later logs: cookie + redirect.
            await self._redirect_without_token(scope, send)
            return
        await self.app(scope, receive, send)

    async def _redirect_without_token(self, scope: Scope, send: Any) -> None:
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        location = (
            scope.get("root_path", "") + scope.get("path", "/") + (f"?{rest}" if rest else "")
        )
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1", "replace")),
                    (b"set-cookie", self._cookie().encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def _cookie(self) -> str:
        return f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"

    async def _refuse(self, scope: Scope, send: Any, path: str, wrong: bool) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
            return
        detail = (
            "wrong access token" if wrong else "this server needs an access token (ENTRODROP_TOKEN)"
        )
        if path.startswith("/api") or path in ("/openapi.json",):
            body = json.dumps({"detail": detail}).encode()
            ctype = b"application/json"
        else:
            error = f'<p class="error">{html.escape(detail)}</p>' if wrong else ""
            body = LOGIN_PAGE.format(path=html.escape(path, quote=True), error=error).encode()
            ctype = b"text/html; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", ctype), (b"www-authenticate", b"Bearer")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class Throttle:
    """Failures per client address in a sliding window; over the limit, how long to wait."""

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def wait_s(self, client: str) -> int:
        """0 when the client may try; else whole seconds until its oldest failure expires."""
        now = time.monotonic()
        times = self._recent(client, now)
        if len(times) < self.limit:
            return 0
        return max(1, int(times[0] + self.window_s - now + 0.999))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        if len(self._failures) >= MAX_TRACKED_CLIENTS and client not in self._failures:
            stale = [c for c, t in self._failures.items() if not self._recent(c, now)]
            for c in stale:
                del self._failures[c]
            if len(self._failures) >= MAX_TRACKED_CLIENTS:
                self._failures.pop(next(iter(self._failures)))
        times = self._recent(client, now)
        times.append(now)
        self._failures[client] = times


async def _send_json(send: Any, status: int, detail: str, retry_after: int | None = None) -> None:
    body = json.dumps({"detail": f"{detail} {retry_after} s" if retry_after else detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------- access log

_TOKEN_IN_URL = re.compile(r"(?i)([?&]token=)[^&\s\"]*")


class RedactTokens(logging.Filter):
    """Replaces the value of `token=` in access-log lines (uvicorn logs the full request URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_URL.sub(r"\1[redacted]", record.msg)
        return True


def redact_access_log(logger_name: str = "uvicorn.access") -> None:
    """Install the redaction on uvicorn's access logger once (after uvicorn set up logging)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
