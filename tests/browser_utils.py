"""Helpers for browser tests: a live uvicorn server in a thread and Debian's headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from waiting import PATIENCE_MS

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def chromium_path() -> str:
    """Debian's chromium; in CI a missing browser fails loudly, elsewhere the test is skipped."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (make browser installs it on Debian)")
    pytest.skip("chromium not installed: `make browser` or your package manager installs it")
    raise AssertionError  # unreachable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve an ASGI app on loopback in a background thread; yields its base URL.

    The socket is bound here (port 0) and handed to uvicorn, so no other process can take the
    port between choosing it and listening on it.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def browser_page() -> Iterator[Any]:
    """A Playwright page in headless Debian Chromium (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # Waits are for events; their timeouts only catch a hang (Playwright's own is 30 s).
            page.set_default_timeout(PATIENCE_MS)
            page.wait_for_function = _as_functions(page.wait_for_function)
            yield page
        finally:
            browser.close()


# A broken image added last: its error handler runs after those of every image added before it
# with the same relative src ("x", as the tests' payloads), which load first or share its request.
_LAST_IMAGE = """(token) => new Promise((resolve) => {
  const img = new Image();
  img.onerror = img.onload = () => { console.log(token); resolve(); };
  img.src = "x";
})"""


def images_settled(page: Any, token: str = "images-settled") -> None:
    """Return once every image the page holds has run its load or error handlers (and anything
    they logged or opened, a console line or a dialog, has reached the test): the positive signal
    before asserting that no handler ran."""
    with page.expect_console_message(lambda m: m.text == token):
        page.evaluate(_LAST_IMAGE, token)


FUNCTION = re.compile(r"^\s*(async\s+)?(function\b|\([^()]*\)\s*=>|[A-Za-z_$][\w$]*\s*=>)")


def _as_functions(wait_for_function: Any) -> Any:
    """page.wait_for_function that takes expressions as functions: Playwright polls a string
    expression with eval(), which the pages' Content-Security-Policy (script-src 'self') forbids;
    a function it compiles through the debugger, which no policy blocks."""

    def wait(expression: str, *args: Any, **kwargs: Any) -> Any:
        if not FUNCTION.match(expression):
            expression = f"() => ({expression.strip()})"
        return wait_for_function(expression, *args, **kwargs)

    return wait


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under tests/artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_fits(page: Any) -> None:
    """No horizontal scrolling: the page is no wider than the window (names what sticks out)."""
    width = page.evaluate("window.innerWidth")
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    wide = page.evaluate(
        "(w) => Array.from(document.querySelectorAll('body *'))"
        ".filter((e) => e.getBoundingClientRect().right > w + 0.5)"
        ".map((e) => `${e.tagName}.${e.className}#${e.id}`).slice(0, 6)",
        width,
    )
    assert scroll <= width + 1, f"{page.url} is {scroll} px wide at {width} px: {wide}"


def buttons_outside_cards(page: Any) -> list[str]:
    """The visible buttons (and button-styled links) that stick out of the card they sit in."""
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll(
                  '.card button, .card a.button, .card input[type=submit]'))
                .filter((b) => b.offsetParent !== null)
                .filter((b) => {
                  const r = b.getBoundingClientRect(), c = b.closest('.card').getBoundingClientRect();
                  return r.left < c.left - 0.5 || r.right > c.right + 0.5;
                })
                .map((b) => `${b.id || b.textContent.trim()}`)"""
        )
    )


@contextmanager
def attacker_site(html: str) -> Iterator[str]:
    """Another origin on this machine (a different port) serving one page: the attacker's."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
