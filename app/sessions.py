"""Browser sessions of a shared server: the cookie holds a random session id, never the token.

A browser that logs in (`?token=...` or the login form) gets a session: 32 random bytes that the
server keeps in memory with an expiry. The id opens the pages and the API like the token does,
but it expires (ENTRODROP_SESSION_LIFETIME_S), `DELETE /api/session` revokes it, a restart
revokes them all, and it is worth nothing to another server, so a cookie that reaches another
port of the same host (cookies are not scoped to a port) does not give the token away.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from app.request_guard import origin_port

SESSION_COOKIE = "entrodrop_session_"  # + the port: two servers on one host keep their own
MAX_SESSIONS = 10_000  # a flood of logins cannot grow the table without bound (oldest go first)


def cookie_name(scope: Mapping[str, Any]) -> str:
    """This server's session cookie name, from the port the browser reached it on."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return f"{SESSION_COOKIE}{origin_port(scope, headers)}"


class Sessions:
    """Live session ids with their expiry; thread-safe (routes run in worker threads)."""

    def __init__(
        self,
        lifetime_s: float,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime_s = lifetime_s
        self.limit = limit
        self.clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()  # oldest first
        self._lock = threading.Lock()

    def create(self) -> str:
        """A new session id, valid for lifetime_s."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[session_id] = self.clock() + self.lifetime_s
            while len(self._expiry) > self.limit:
                self._expiry.popitem(last=False)
        return session_id

    def valid(self, session_id: str) -> bool:
        """True for a live session; an expired one is forgotten."""
        with self._lock:
            expiry = self._expiry.get(session_id)
            if expiry is None:
                return False
            if self.clock() >= expiry:
                del self._expiry[session_id]
                return False
            return True

    def revoke(self, session_id: str) -> bool:
        """End a session (log out); False when there was none."""
        with self._lock:
            return self._expiry.pop(session_id, None) is not None

    def set_cookie(self, name: str, session_id: str) -> str:
        """The Set-Cookie value: HttpOnly (no script reads it), SameSite=Strict, expiring."""
        age = int(self.lifetime_s)
        return f"{name}={session_id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}"


class SessionRevoked(BaseModel):
    """Whether the request's session existed and is now ended."""

    model_config = ConfigDict(extra="forbid")

    revoked: bool


router = APIRouter(prefix="/api", tags=["session"])


@router.delete(
    "/session",
    response_model=SessionRevoked,
    summary="Log out: end this browser's session (a shared server's; the token stays valid)",
)
def api_logout(request: Request, response: Response) -> SessionRevoked:
    sessions: Sessions | None = getattr(request.app.state, "sessions", None)
    name = cookie_name(request.scope)
    session_id = request.cookies.get(name, "")
    revoked = sessions is not None and bool(session_id) and sessions.revoke(session_id)
    response.delete_cookie(name, path="/", httponly=True, samesite="strict")
    return SessionRevoked(revoked=revoked)
