"""Access token check for every page and API call when the server is shared (ENTRODROP_TOKEN)."""

from __future__ import annotations

import html
import ipaddress
import json
import secrets
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

COOKIE = "entrodrop_token"
# Open without a token: the health probe (Docker HEALTHCHECK) and static assets of the login page.
OPEN_PREFIXES = ("/api/health", "/static/", "/favicon.ico")

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
<title>EntroDrop Studio: access token</title><link rel="stylesheet" href="/static/style.css"></head>
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

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        presented, from_query = _presented_token(scope)
        ok = presented is not None and secrets.compare_digest(
            presented.encode("utf-8", "surrogateescape"), self.token.encode()
        )
        if not ok:
            await self._refuse(scope, send, path, wrong=presented is not None)
            return
        if from_query:
            # Remember the token in a cookie so links and fetches from the page work.
            await self.app(scope, receive, self._with_cookie(send))
            return
        await self.app(scope, receive, send)

    def _with_cookie(self, send: Any) -> Any:
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"

        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())],
                }
            await send(message)

        return wrapped

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
