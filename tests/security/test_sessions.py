"""The access token of a shared server stays on the server's side: the browser holds a session id
(random, expiring, revocable), the token comes from a file or the environment rather than `ps`,
and the access log never shows it, however its name is spelt in the URL."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app import home_lock, security
from app.main import create_app
from app.settings import Settings
from entrodrop.cli import app as cli

TOKEN = "s3cret-token-of-the-server"


def _client(home: Path, **settings: Any) -> TestClient:
    app = create_app(Settings(home=home, token=TOKEN, load_model_on_startup=False, **settings))
    return TestClient(app)


def test_the_browser_cookie_is_a_revocable_session_not_the_token(entrodrop_home: Path) -> None:
    with _client(entrodrop_home) as client:
        r = client.get(f"/runs?token={TOKEN}")
        assert r.status_code == 200
        (hop,) = r.history
        cookie = hop.headers["set-cookie"]
        assert TOKEN not in cookie, cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=" in cookie
        assert all(TOKEN not in value for value in client.cookies.values())
        assert client.get("/api/runs").status_code == 200  # the session opens the API
        r = client.delete("/api/session")
        assert r.status_code == 200 and r.json() == {"revoked": True}
        assert client.get("/api/runs").status_code == 401  # revoked: log in again
        # A cookie that holds the token itself (what older servers set) is no session.
        client.cookies.clear()
        client.cookies.set("entrodrop_token", TOKEN)
        assert client.get("/api/runs").status_code == 401


def test_sessions_expire_and_are_bounded() -> None:
    from app.sessions import Sessions

    now = [1000.0]
    sessions = Sessions(lifetime_s=60.0, limit=3, clock=lambda: now[0])
    first = sessions.create()
    assert sessions.valid(first) and not sessions.valid("guess") and not sessions.valid("")
    now[0] += 61
    assert not sessions.valid(first)  # expired
    ids = [sessions.create() for _ in range(4)]
    assert not sessions.valid(ids[0]) and all(sessions.valid(i) for i in ids[1:])  # oldest out
    assert sessions.revoke(ids[1]) and not sessions.valid(ids[1]) and not sessions.revoke(ids[1])


def _serve(args: list[str], monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[Any, str]:
    """Run `entrodrop serve ARGS` up to the point where uvicorn would start; (settings, output)."""
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app))
    monkeypatch.setattr(home_lock, "hold_home", lambda *a: None)  # no lock kept by the test
    result = CliRunner().invoke(cli, ["serve", "--port", "8123", *args], env=env)
    assert result.exit_code == 0, result.output
    return seen["app"].state.settings, result.output


def test_the_token_comes_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENTRODROP_TOKEN", raising=False)
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n", encoding="utf-8")
    secret.chmod(0o600)
    settings, output = _serve(["--token-file", str(secret)], monkeypatch)
    assert settings.token == TOKEN and "visible" not in output
    settings, output = _serve([], monkeypatch, ENTRODROP_TOKEN=TOKEN)
    assert settings.token == TOKEN and "visible" not in output
    settings, output = _serve(["--token", TOKEN], monkeypatch)  # still works, with a warning
    assert settings.token == TOKEN and "visible to every local user" in output
    assert TOKEN not in output
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["serve", "--token-file", str(empty)])
    assert result.exit_code == 2 and "empty" in result.output


@pytest.mark.parametrize("name", ["token", "TOKEN", "%74oken", "%74%6F%6B%65%6E", "to%6Ben"])
def test_the_access_log_redacts_the_token_by_its_decoded_name(name: str) -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/runs?x=1&{name}={TOKEN}&y=2", "1.1", 303), None,
    )  # fmt: skip
    assert security.RedactTokens().filter(record)
    line = record.getMessage()
    assert TOKEN not in line and "x=1" in line and "y=2" in line and "[redacted]" in line


def test_a_percent_encoded_token_name_is_still_the_token(entrodrop_home: Path) -> None:
    with _client(entrodrop_home) as client:
        r = client.get(f"/runs?%74oken={TOKEN}&x=1")
        (hop,) = r.history
        assert hop.status_code == 303 and hop.headers["location"] == "/runs?x=1"
