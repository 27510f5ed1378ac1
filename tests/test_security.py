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
        r = client.get(f"/runs?token={TOKEN}&x=1")
        assert r.status_code == 200
        # the token is answered with a cookie and a redirect to the same URL without it
        (hop,) = r.history
        assert hop.status_code == 303 and hop.headers["location"] == "/runs?x=1"
        assert "entrodrop_token" in hop.headers.get("set-cookie", "")
        assert str(r.url).endswith("/runs?x=1")
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


def test_shared_server_refuses_model_folders_outside_allowed(
    entrodrop_home: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    settings = Settings(home=entrodrop_home, token=TOKEN, model=str(tiny_model_dir))
    with TestClient(create_app(settings)) as client:
        # the server's own model (chosen by whoever started it) is fine
        _wait_ready(client, auth)
        assert client.post("/api/score", json={"text": "x = 1"}, headers=auth).status_code == 200
        other = tmp_path / "elsewhere"
        other.symlink_to(tiny_model_dir)
        r = client.post("/api/score", json={"text": "x = 1", "model": str(other)}, headers=auth)
        assert r.status_code == 422 and "disabled on this shared server" in r.json()["detail"]
        r = client.post("/api/runs/check", json={"model": str(other)}, headers=auth)
        assert "disabled on this shared server" in str(r.json())
    allowed = tmp_path / "models"
    allowed.mkdir()
    inside = allowed / "tiny"
    inside.symlink_to(tiny_model_dir)  # a symlink out of the allowed folder is refused too
    settings = Settings(
        home=entrodrop_home, token=TOKEN, model=str(tiny_model_dir), allowed_model_dirs=[allowed]
    )
    with TestClient(create_app(settings)) as client:
        _wait_ready(client, auth)
        r = client.post("/api/score", json={"text": "x = 1", "model": str(inside)}, headers=auth)
        assert r.status_code == 422 and "outside the allowed model folders" in r.json()["detail"]


def _wait_ready(client: TestClient, headers: dict[str, str]) -> None:
    import time

    deadline = time.time() + 60
    while not client.get("/api/health").json()["model_loaded"]:
        assert time.time() < deadline, "model did not load"
        time.sleep(0.1)
