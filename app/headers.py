"""Security headers on every answer: no page may be framed by another site (clickjacking), and
pages run scripts and load data from this server only (a Content-Security-Policy)."""

from __future__ import annotations

from typing import Any

FRAME_ANCESTORS = "frame-ancestors 'none'"


def page_policy(unsafe_eval: bool = False) -> str:
    """A page's Content-Security-Policy: every script, style, font and request from this server.

    Inline <script type="application/json"> data blocks are data, never run, so scripts need no
    'unsafe-inline'. Styles do: Plotly sets style attributes as it draws, and so does the runs
    list's progress bar. `unsafe_eval`: Plotly's WebGL traces (regl) compile their drawing code
    with Function(), which the Inspect page's per-position chart needs for long texts.
    (tests/security/test_browser_frames.py loads every page under its policy.)
    """
    script = "script-src 'self' 'unsafe-eval'" if unsafe_eval else "script-src 'self'"
    return "; ".join(
        (
            "default-src 'self'",
            script,
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            FRAME_ANCESTORS,
        )
    )


PAGE_CSP = page_policy()


def _with_frames(policy: bytes) -> bytes:
    """A route's own policy (the Inspect page, the API docs) with framing forbidden too."""
    if b"frame-ancestors" in policy:
        return policy
    return policy.rstrip(b"; ") + b"; " + FRAME_ANCESTORS.encode()


class SecurityHeaders:
    """Pure ASGI middleware, outermost: it also covers the answers other middlewares give (the
    login page, refusals). X-Frame-Options for older browsers, CSP frame-ancestors for the rest."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                own = [v for k, v in headers if k.lower() == b"content-security-policy"]
                headers = [(k, v) for k, v in headers if k.lower() != b"content-security-policy"]
                policy = _with_frames(own[0]) if own else PAGE_CSP.encode()
                headers += [(b"content-security-policy", policy), (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
