"""Clickjacking: no page of the dashboard may be framed (X-Frame-Options and CSP frame-ancestors
on every HTML answer, error and login pages included), and every page has a Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

PAGES = (
    "/",
    "/runs",
    "/runs/new",
    "/compare",
    "/compare?runs=r-none",
    "/runs/r-none",
    "/studies",
    "/studies/new",
    "/studies/s-none",
    "/docs",
    "/redoc",
)


def _check_unframeable(r: object, where: str) -> None:
    headers = r.headers  # type: ignore[attr-defined]
    assert "text/html" in headers["content-type"], where
    assert headers.get("x-frame-options") == "DENY", where
    policy = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, (where, policy)
    assert "script-src 'self'" in policy or "script-src 'self' 'unsafe-inline'" in policy, where


def test_every_page_refuses_to_be_framed(entrodrop_home: Path) -> None:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    with TestClient(app) as client:
        for path in PAGES:
            r = client.get(path)
            assert r.status_code in (200, 404), (path, r.status_code)
            _check_unframeable(r, path)


def test_the_login_page_refuses_to_be_framed(entrodrop_home: Path) -> None:
    app = create_app(Settings(home=entrodrop_home, token="t0ken", load_model_on_startup=False))
    with TestClient(app) as client:
        r = client.get("/runs/new")
        assert r.status_code == 401 and "Access token needed" in r.text
        _check_unframeable(r, "the login page")
