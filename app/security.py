"""Access token check for every page and API call when the server is shared (ENTRODROP_TOKEN):
a browser logs in once and holds a session (app.sessions), the token leaves the URL by a
redirect and never reaches the access log; wrong ones are throttled."""

from __future__ import annotations

import html
import logging
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlencode

from fastapi.responses import HTMLResponse

from app.errors import send_error
from app.sessions import Sessions, cookie_name

# Open without a token: the health probe (Docker HEALTHCHECK) and static assets of the login page.
OPEN_PREFIXES = ("/api/health", "/static/", "/favicon.ico")
TOKEN_PARAM = "token"  # ?token=... logs a browser in (and leaves the URL by a redirect)

# Wrong tokens a client may present per window before it is told to wait (429, Retry-After).
MAX_FAILURES = 10
FAILURE_WINDOW_S = 60.0
MAX_TRACKED_CLIENTS = 10_000  # a flood of addresses cannot grow the table without bound

Scope = dict[str, Any]


@dataclass
class Presented:
    """What a request carries: a token (header or query) and/or a session cookie."""

    token: str | None = None
    from_query: bool = False
    session: str | None = None


def _presented(scope: Scope) -> Presented:
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
    }
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return Presented(auth[7:].strip())
    if "x-entrodrop-token" in headers:
        return Presented(headers["x-entrodrop-token"].strip())
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get(TOKEN_PARAM):
        return Presented(query[TOKEN_PARAM][0], from_query=True)
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is simply no session
        return Presented()
    morsel = cookie.get(cookie_name(scope))
    return Presented(session=morsel.value if morsel else None)


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
    """Pure ASGI middleware (streams such as SSE pass through untouched): the token (header or
    query) or a live session (cookie) opens everything but OPEN_PREFIXES."""

    def __init__(self, app: Any, token: str, sessions: Sessions) -> None:
        self.app = app
        self.token = token
        self.sessions = sessions
        self.throttle = Throttle()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        presented = _presented(scope)
        if presented.session is not None and self.sessions.valid(presented.session):
            await self.app(scope, receive, send)
            return
        # A stale or unknown session is no credential (an old cookie after a restart): the
        # login page, without counting it as a guess.
        client = (scope.get("client") or ("?", 0))[0]
        if presented.token is not None:
            wait = self.throttle.wait_s(client)
            if wait and scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4429})
                return
            if wait:
                detail = f"too many wrong access tokens; wait {wait} s"
                await send_error(scope, receive, send, 429, detail, {"Retry-After": str(wait)})
                return
        ok = presented.token is not None and secrets.compare_digest(
            presented.token.encode("utf-8", "surrogateescape"), self.token.encode()
        )
        if not ok:
            if presented.token is not None:
                self.throttle.failed(client)
            await self._refuse(scope, receive, send, path, wrong=presented.token is not None)
            return
        if presented.from_query and scope.get("method") in ("GET", "HEAD"):
            # Keep the token out of the address bar, history and later logs: a session + redirect.
            await self._redirect_with_session(scope, send)
            return
        await self.app(scope, receive, send)

    async def _redirect_with_session(self, scope: Scope, send: Any) -> None:
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        rest = urlencode([(k, v) for k, v in query if k != TOKEN_PARAM])
        location = (
            scope.get("root_path", "") + scope.get("path", "/") + (f"?{rest}" if rest else "")
        )
        cookie = self.sessions.set_cookie(cookie_name(scope), self.sessions.create())
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1", "replace")),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, scope: Scope, receive: Any, send: Any, path: str, wrong: bool) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
            return
        detail = (
            "wrong access token" if wrong else "this server needs an access token (ENTRODROP_TOKEN)"
        )
        if path.startswith("/api") or path in ("/openapi.json",):
            await send_error(scope, receive, send, 401, detail, {"WWW-Authenticate": "Bearer"})
            return
        error = f'<p class="error">{html.escape(detail)}</p>' if wrong else ""
        page = LOGIN_PAGE.format(path=html.escape(path, quote=True), error=error)
        headers = {"WWW-Authenticate": "Bearer"}
        await HTMLResponse(page, status_code=401, headers=headers)(scope, receive, send)


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


# ---------------------------------------------------------------- access log

_QUERY_PAIR = re.compile(r"([?&])([^=&\s\"#]*)=([^&\s\"#]*)")


def redact_query(text: str) -> str:
    """`text` (a URL, a log line) with the value of every `token` query parameter replaced,
    matched by its decoded name as the server reads it: `?%74oken=` and `?TOKEN=` too."""

    def pair(match: re.Match[str]) -> str:
        sep, name, value = match.groups()
        secret = unquote_plus(name).lower() == TOKEN_PARAM
        return f"{sep}{name}={'[redacted]' if secret else value}"

    return _QUERY_PAIR.sub(pair, text)


class RedactTokens(logging.Filter):
    """Replaces the value of `token=` in access-log lines (uvicorn logs the full request URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True


def redact_access_log(logger_name: str = "uvicorn.access") -> None:
    """Install the redaction on uvicorn's access logger once (after uvicorn set up logging)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
