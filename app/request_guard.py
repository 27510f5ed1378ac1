"""Who may drive the server from a browser: Host allow-list (DNS rebinding), same-origin writes,
JSON-only bodies and a double-submit CSRF token, checked before any route sees the request."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from app.errors import send_error
from app.settings import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
# The endpoints that take multipart bodies (the dataset upload, Inspect's text file); every other
# write is JSON.
MULTIPART_PATHS = frozenset({"/api/uploads", "/api/text-file"})
# Pages post no HTML forms (their scripts send JSON and FormData), so no urlencoded bodies.
CSRF_COOKIE = "entrodrop_csrf_"  # + the port: two servers on one host keep their own cookie
CSRF_HEADER = "x-csrf-token"
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Scope = dict[str, Any]


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def split_host(value: str) -> tuple[str, int | None]:
    """'[::1]:8000' -> ('::1', 8000); 'Example.COM.' -> ('example.com', None); bad port -> -1."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port_text = value.partition(":")
    else:
        name, port_text = value, ""
    if not port_text:
        return name.rstrip("."), None
    return name.rstrip("."), int(port_text) if port_text.isdigit() else -1


def _machine_names() -> set[str]:
    """This machine's names and addresses: what clients use to reach a wildcard bind."""
    import psutil

    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    for addresses in psutil.net_if_addrs().values():
        for addr in addresses:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                names.add(addr.address.split("%", 1)[0].lower())
    return names


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """Host names the server answers to; None when ENTRODROP_ALLOWED_HOSTS has '*' (no check)."""
    extra = {split_host(h)[0] for h in settings.allowed_hosts}
    if "*" in extra:
        return None
    bound = split_host(settings.host)[0] if ":" not in settings.host else settings.host.lower()
    names = set(LOOPBACK_NAMES) | extra | {bound}
    if bound in WILDCARD_BINDS:
        names |= _machine_names()
    return frozenset(names - {""})


def _is_loopback_ip(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """Pure ASGI middleware, private and token mode alike (streams pass through untouched)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.hosts = allowed_hosts(settings)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        problem = self._host_problem(headers.get("host"))
        if problem:
            await _refuse(scope, receive, send, 400, problem)
            return
        method = scope.get("method", "GET")
        if scope["type"] == "websocket" or method in UNSAFE_METHODS:
            checked = self._origin_problem(scope, headers) or self._body_problem(scope, headers)
            if checked:
                await _refuse(scope, receive, send, *checked)
                return
        if scope["type"] == "http" and method in ("GET", "HEAD"):
            name = _cookie_name(scope, headers)
            if not _csrf_cookie(headers, name):
                send = _setting_csrf_cookie(send, name)
        await self.app(scope, receive, send)

    def _host_problem(self, host: str | None) -> str | None:
        """Why a Host header is refused (DNS rebinding: a foreign name pointing at loopback)."""
        if self.hosts is None:
            return None
        if not host:
            return None  # browsers always send Host; only they can be rebound
        name, port = split_host(host)
        if port == -1 or (name not in self.hosts and not _is_loopback_ip(name)):
            return (
                f"this server does not answer to the host {host!r}; add the name to "
                "ENTRODROP_ALLOWED_HOSTS if it is really this server"
            )
        return None

    def _origin_problem(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        """A write (or websocket) from another web page: refused whatever else it carries."""
        site = headers.get("sec-fetch-site", "")
        if site in ("cross-site", "same-site"):
            return 403, f"cross-origin request refused (Sec-Fetch-Site: {site})"
        origin = headers.get("origin")
        if origin is not None and origin != "" and not _same_origin(scope, headers, origin):
            return 403, f"cross-origin request refused (Origin {origin!r} is not this server)"
        if scope["type"] == "http" and _from_browser(headers) and not _csrf_ok(scope, headers):
            return 403, (
                "the request lacks this page's CSRF token (X-CSRF-Token header matching the "
                "entrodrop_csrf cookie); reload the page"
            )
        return None

    def _body_problem(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        """JSON endpoints take JSON, the upload endpoint multipart: nothing a plain form can send."""
        if scope["type"] != "http":
            return None
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        has_body = headers.get("content-length", "0") not in ("", "0") or (
            "transfer-encoding" in headers
        )
        if not media and not has_body:
            return None  # a bodyless POST (cancel, resume) from curl or a script
        if scope.get("path") in MULTIPART_PATHS:
            if media != "multipart/form-data":
                return 415, "this endpoint takes a file as multipart/form-data"
        elif media != "application/json" and not media.endswith("+json"):
            return 415, f"the body must be JSON (Content-Type: application/json), not {media!r}"
        return None


def _same_origin(scope: Scope, headers: dict[str, str], origin: str) -> bool:
    """Origin equals this server's own origin: scheme, host and port of the request's Host."""
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme"))
    try:
        parts = urlsplit(origin)
        origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return False  # "null" (sandboxed frames, file://) and malformed values
    name, port = split_host(headers.get("host", ""))
    own_port = port or DEFAULT_PORTS.get(str(scheme))
    return (
        parts.scheme == scheme
        and (parts.hostname or "").rstrip(".") == name
        and origin_port == own_port
    )


def _from_browser(headers: dict[str, str]) -> bool:
    """Browsers send Origin on writes and Sec-Fetch-* always; curl, scripts and the CLI neither."""
    return "origin" in headers or any(k.startswith("sec-fetch-") for k in headers)


def origin_port(scope: Mapping[str, Any], headers: dict[str, str]) -> int:
    """The port the browser reached this server on (its Host's, else the scheme's default)."""
    _, port = split_host(headers.get("host", ""))
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme"))
    return port if port and port > 0 else DEFAULT_PORTS.get(str(scheme), 80)


def _cookie_name(scope: Scope, headers: dict[str, str]) -> str:
    return f"{CSRF_COOKIE}{origin_port(scope, headers)}"


def _csrf_cookie(headers: dict[str, str], name: str) -> str | None:
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header holds no token
        return None
    morsel = cookie.get(name)
    return morsel.value if morsel else None


def _csrf_ok(scope: Scope, headers: dict[str, str]) -> bool:
    """Double submit: the header must repeat the cookie, which only this origin's script reads."""
    cookie = _csrf_cookie(headers, _cookie_name(scope, headers))
    sent = headers.get(CSRF_HEADER, "")
    return bool(cookie and sent) and secrets.compare_digest(
        sent.encode("latin-1"), str(cookie).encode("latin-1", "replace")
    )


def _setting_csrf_cookie(send: Any, name: str) -> Any:
    """Wrap send so the response gives the page a fresh CSRF cookie (readable by its script)."""
    cookie = f"{name}={secrets.token_urlsafe(32)}; Path=/; SameSite=Strict".encode()

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
        await send(message)

    return wrapped


async def _refuse(scope: Scope, receive: Any, send: Any, status: int, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4000 + status})
        return
    await send_error(scope, receive, send, status, detail)
