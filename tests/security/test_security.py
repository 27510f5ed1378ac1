"""Access token: every page and API call needs it when set; health stays open for probes."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import security
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
        assert "entrodrop_session_" in hop.headers.get("set-cookie", "")  # a session, not the token
        assert str(r.url).endswith("/runs?x=1")
        # the cookie now opens other pages and the API
        assert client.get("/api/runs").status_code == 200


def test_health_and_static_stay_open(entrodrop_home: Path) -> None:
    with _client(entrodrop_home) as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/static/common/style.css").status_code == 200


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

    from waiting import PATIENCE_S

    deadline = time.time() + PATIENCE_S
    while not client.get("/api/health").json()["model_loaded"]:
        assert time.time() < deadline, "model did not load"
        time.sleep(0.1)


# ---------------------------------------------------------------- Host allow-list (DNS rebinding)


def _open_client(home: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(home=home, load_model_on_startup=False, **settings)))  # type: ignore[arg-type]


def test_foreign_host_headers_are_refused(entrodrop_home: Path) -> None:
    with _open_client(entrodrop_home, allowed_hosts=["testserver", "studio.lan"]) as client:
        for host in ("attacker.example:8000", "attacker.example", "127.0.0.1.nip.io", "x:y"):
            r = client.get("/api/runs", headers={"Host": host})
            assert r.status_code == 400, host
            assert "does not answer to the host" in r.json()["detail"]
        for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST", "studio.lan"):
            assert client.get("/api/runs", headers={"Host": host}).status_code == 200, host


def test_testserver_is_not_allowed_by_default(entrodrop_home: Path) -> None:
    # Only the tests' ENTRODROP_ALLOWED_HOSTS lets TestClient's "testserver" in.
    with _open_client(entrodrop_home, allowed_hosts=[]) as client:
        assert client.get("/api/health").status_code == 400
        assert client.get("/api/health", headers={"Host": "localhost"}).status_code == 200


def test_allowed_hosts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENTRODROP_ALLOWED_HOSTS", "a.example, b.example:9000")
    assert Settings().allowed_hosts == ["a.example", "b.example:9000"]


# ---------------------------------------------------------------- cross-origin writes


def _csrf(client: TestClient) -> str:
    """The CSRF cookie a page load hands out (as the browser would keep it)."""
    r = client.get("/runs", headers={"Host": "localhost:8000"})
    cookie = r.cookies.get("entrodrop_csrf_8000")
    assert cookie, r.headers
    return cookie


def test_cross_origin_writes_are_refused(entrodrop_home: Path) -> None:
    host = {"Host": "localhost:8000"}
    with _open_client(entrodrop_home) as client:
        token = _csrf(client)
        cases = [
            {"Origin": "http://localhost:9999"},  # another local port
            {"Origin": "http://attacker.example"},
            {"Origin": "null"},  # sandboxed frames, file:// pages
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},  # another port of the same host
            {"Origin": "https://localhost:8000"},  # another scheme
        ]
        for extra in cases:
            headers = {**host, **extra, "X-CSRF-Token": token}
            r = client.post("/api/runs", json={"max_steps": 1}, headers=headers)
            assert r.status_code == 403, extra
            assert "cross-origin" in r.json()["detail"]
        assert client.get("/api/runs").json()["runs"] == []


def test_the_pages_own_writes_need_the_csrf_token(entrodrop_home: Path) -> None:
    page = {"Host": "localhost:8000", "Origin": "http://localhost:8000"}
    with _open_client(entrodrop_home) as client:
        token = _csrf(client)
        r = client.post("/api/runs/check", json={}, headers=page)
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
        r = client.post("/api/runs/check", json={}, headers={**page, "X-CSRF-Token": "guess"})
        assert r.status_code == 403
        r = client.post("/api/runs/check", json={}, headers={**page, "X-CSRF-Token": token})
        assert r.status_code == 200, r.text
        # Sec-Fetch-Site alone marks a browser too (same-origin requests may omit Origin)
        same = {"Host": "localhost:8000", "Sec-Fetch-Site": "same-origin"}
        assert client.post("/api/runs/check", json={}, headers=same).status_code == 403


def test_scripts_without_browser_headers_keep_working(entrodrop_home: Path) -> None:
    with _open_client(entrodrop_home) as client:
        assert client.post("/api/runs/check", json={}).status_code == 200
        r = client.post("/api/runs/r000000000000-dead/cancel")  # a bodyless POST, like curl -X
        assert r.status_code == 404


def test_writes_take_json_only(entrodrop_home: Path) -> None:
    with _open_client(entrodrop_home) as client:
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            r = client.post(
                "/api/runs", content=b'{"max_steps": 1}', headers={"Content-Type": ctype}
            )
            assert r.status_code == 415, ctype
            assert "application/json" in r.json()["detail"]
        r = client.post("/api/runs", content=b'{"max_steps": 1}')  # a body without a type
        assert r.status_code == 415
        r = client.post("/api/uploads", json={"file": "x"})
        assert r.status_code == 415 and "multipart" in r.json()["detail"]
        assert client.get("/api/runs").json()["runs"] == []


# ---------------------------------------------------------------- the token: URL, logs, guessing


def test_wrong_tokens_are_throttled(entrodrop_home: Path) -> None:
    with _client(entrodrop_home) as client:
        for _ in range(security.MAX_FAILURES):
            r = client.get("/api/runs", headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401
        r = client.get("/api/runs", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        # while throttled even the right token waits: guessing gets no answer either way
        r = client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 429
        assert client.get("/api/health").status_code == 200


def test_throttle_window_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    from types import SimpleNamespace

    now = [1000.0]  # a fake clock: the window expires when the test says, not when the CPU does
    monkeypatch.setattr(security, "time", SimpleNamespace(monotonic=lambda: now[0], time=time.time))
    throttle = security.Throttle(limit=2, window_s=0.2)
    throttle.failed("a")
    throttle.failed("a")
    assert throttle.wait_s("a") >= 1 and throttle.wait_s("b") == 0
    now[0] += 0.25
    assert throttle.wait_s("a") == 0


def test_the_token_never_reaches_the_access_log() -> None:
    import logging

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/runs?x=1&token={TOKEN}&y=2", "1.1", 303), None,
    )  # fmt: skip
    assert security.RedactTokens().filter(record)
    line = record.getMessage()
    assert TOKEN not in line and "token=[redacted]&y=2" in line and "x=1" in line
    security.redact_access_log()
    security.redact_access_log()  # installed once however often the app is built
    filters = logging.getLogger("uvicorn.access").filters
    assert sum(isinstance(f, security.RedactTokens) for f in filters) == 1


# ---------------------------------------------------------------- names and paths


def test_overlong_names_are_422(entrodrop_home: Path) -> None:
    with _open_client(entrodrop_home) as client:
        for body in ({"model": "a" * 300}, {"model": "/tmp/" + "a" * 300}, {"dataset": "b" * 300}):
            r = client.post("/api/runs/check", json=body)
            assert r.status_code == 422, r.text
            assert "at most 255" in r.json()["detail"]


def test_shared_server_reveals_nothing_about_paths(entrodrop_home: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with _client(entrodrop_home) as client:
        details = set()
        for path in ("/etc", "/dev/zero", "/no/such/folder", str(entrodrop_home)):
            for url, body in (
                ("/api/runs/check", {"model": path}),
                ("/api/score", {"text": "x", "model": path}),
            ):
                r = client.post(url, json=body, headers=auth)
                assert r.status_code == 422, (url, path)
                details.add(r.json()["detail"].removeprefix("model: "))
        assert len(details) == 1 and "disabled on this shared server" in details.pop()


# ---------------------------------------------------------------- the parquet bomb


def parquet_bomb(rows: int = 1000, value_bytes: int = 1_000_000) -> bytes:
    """A few hundred bytes of parquet declaring rows x value_bytes of text (one dictionary value)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    indices = pa.array([0] * rows, pa.int32())
    column = pa.DictionaryArray.from_arrays(indices, pa.array(["x" * value_bytes]))
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": column}), buf, compression="zstd", store_schema=False)
    return buf.getvalue()


def test_parquet_bomb_upload_is_413_with_flat_memory(entrodrop_home: Path) -> None:
    import psutil

    bomb = parquet_bomb()
    assert len(bomb) < 1000
    with _open_client(entrodrop_home) as client:
        client.get("/api/health")
        before = psutil.Process().memory_info().rss
        r = client.post("/api/uploads", files={"file": ("bomb.parquet", bomb)})
        grown = psutil.Process().memory_info().rss - before
        assert r.status_code == 413, r.text
        budget = Settings(home=entrodrop_home).text_budget
        assert str(budget) in r.json()["detail"]
        assert grown < 200_000_000, f"RSS grew by {grown / 1e6:.0f} MB"
        assert not list((entrodrop_home / "uploads").glob("*.parquet"))


def test_training_children_get_the_servers_text_budget(entrodrop_home: Path) -> None:
    from app.runs.runner import JobRunner
    from app.runs.storage import Storage
    from entrodrop.data import TEXT_BUDGET_ENV

    settings = Settings(home=entrodrop_home, max_upload_bytes=1000)
    runner = JobRunner(settings, Storage(settings.db_path))
    assert runner.child_env()[TEXT_BUDGET_ENV] == str(settings.text_budget) == "4000"
    settings = Settings(home=entrodrop_home, max_text_bytes=123)
    assert JobRunner(settings, Storage(settings.db_path)).child_env()[TEXT_BUDGET_ENV] == "123"


def test_data_files_and_model_folders_follow_one_path_rule(
    entrodrop_home: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Listed folders for a kind: only inside them; none listed: any path on a private server,
    none on a shared one. The same for data files and model folders, and the form says which."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.txt").write_text("first note\n\n\nsecond note\n")
    body = {"dataset": str(corpus / "notes.txt"), "model": str(tiny_model_dir)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    cases = [
        ({}, {}, 200, "any path"),  # private, no list
        ({"token": TOKEN}, auth, 422, "off on this shared server"),
        ({"allowed_data_dirs": [elsewhere], "allowed_model_dirs": [elsewhere]}, {}, 422, "only"),
        ({"allowed_data_dirs": [corpus], "allowed_model_dirs": [tiny_model_dir]}, {}, 200, "only"),
    ]
    for extra, headers, status, words in cases:
        settings = Settings(home=entrodrop_home, load_model_on_startup=False, **extra)
        with TestClient(create_app(settings)) as client:
            res = client.post("/api/runs/check", json=body, headers=headers)
            assert res.status_code == status, (extra, res.text)
            if status == 422:  # both refused, each at its field
                assert {e["field"] for e in res.json()["errors"]} == {"dataset", "model"}, res.text
            rules = client.get("/api/runs/form", headers=headers).json()["path_rules"]
            for kind in ("data", "model"):
                assert words in rules[kind]["text"], (extra, rules)
                assert rules[kind]["by_path"] == (status == 200 or "only" in words)
            page = html.unescape(client.get("/runs/new", headers=headers).text)
            assert rules["data"]["text"] in page and rules["model"]["text"] in page
