"""Access token: every page and API call needs it when set; health stays open for probes."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

TOKEN = "s3cret-token"


def _client(home: Path) -> TestClient:
    settings = Settings(home=home, token=TOKEN, load_model_on_startup=False)
    return TestClient(create_app(settings))


def test_api_needs_the_token(entrodrop_home: Path) -> None:
    with _client(entrodrop_home) as client:
        for path in ("/api/model", "/api/runs", "/openapi.json"):
            r = client.get(path)
            assert r.status_code == 401, path
            assert "access token" in r.json()["detail"]
        assert (
            client.get("/api/runs", headers={"Authorization": "Bearer nope"}).json()["detail"]
            == "wrong access token"
        )
        assert (
            client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        )
        assert client.get("/api/runs", headers={"X-EntroDrop-Token": TOKEN}).status_code == 200
        assert client.post("/api/score", json={"text": "hi"}).status_code == 401


def test_pages_show_a_login_form_and_accept_the_query_token(entrodrop_home: Path) -> None:
    with _client(entrodrop_home) as client:
        r = client.get("/runs")
        assert r.status_code == 401 and "Access token needed" in r.text
        r = client.get(f"/runs?token={TOKEN}")
        assert r.status_code == 200
        assert "entrodrop_token" in r.headers.get("set-cookie", "")
        # the cookie now opens other pages and the API
        assert client.get("/api/runs").status_code == 200


def test_health_and_static_stay_open(entrodrop_home: Path) -> None:
    with _client(entrodrop_home) as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/static/style.css").status_code == 200


def test_no_token_configured_means_open_on_loopback(entrodrop_home: Path) -> None:
    settings = Settings(home=entrodrop_home, load_model_on_startup=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/runs").status_code == 200
