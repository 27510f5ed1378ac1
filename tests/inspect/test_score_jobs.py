"""Scoring jobs with progress, cancel and clients that go away: NDJSON events, a dropped job frees
the worker, estimates from the measured rate, validation, top-k and compare checking both models."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from browser_utils import live_server
from fastapi.testclient import TestClient
from test_api_inspect import TEXT, make_client, wait_loaded
from waiting import PATIENCE_S

from app.main import create_app
from app.score_job import ScoreJob
from app.settings import Settings
from entrodrop.config import MAX_TOP_K

LONG = TEXT * 40  # well over one 512-token window of the tiny model


@pytest.fixture
def client(tiny_model_dir: Path, entrodrop_home: Path) -> Iterator[TestClient]:
    with make_client(entrodrop_home, tiny_model_dir) as c:
        assert wait_loaded(c)["model_loaded"]
        yield c


def events(res: httpx.Response) -> list[dict[str, Any]]:
    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in res.text.splitlines() if line]


def test_stream_reports_progress_then_the_plain_result(client: TestClient) -> None:
    plain = client.post("/api/score", json={"text": LONG}).json()
    got = events(client.post("/api/score?stream=1", json={"text": LONG}))
    kinds = [e["event"] for e in got]
    assert kinds[:2] == ["queued", "started"] and kinds[-1] == "result"
    progress = [e for e in got if e["event"] == "progress"]
    n = plain["n_tokens"]
    assert len(progress) >= 3  # before the first window, then after each of several windows
    assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)
    assert progress[0]["done"] == 0 and progress[-1]["done"] == progress[-1]["total"] == n - 1
    assert all(p["eta_s"] is None or p["eta_s"] >= 0 for p in progress)
    result = got[-1]["result"]
    timing = {"elapsed_s": 0, "waited_s": 0}  # the times differ from one request to the next
    assert {**result, **timing} == {**plain, **timing}
    # The Accept header asks for the same stream.
    accept = {"Accept": "application/x-ndjson"}
    assert (
        events(client.post("/api/score", json={"text": "hi there"}, headers=accept))[-1]["event"]
        == "result"
    )


def test_stream_errors_after_start_are_events(tiny_model_dir: Path, entrodrop_home: Path) -> None:
    with make_client(entrodrop_home, tiny_model_dir, max_score_tokens=10) as c:
        wait_loaded(c)
        got = events(c.post("/api/score?stream=1", json={"text": TEXT}))
        assert got[-1]["event"] == "error" and got[-1]["status"] == 413
        assert "limit is 10 tokens" in got[-1]["detail"]
        # Errors known before the job starts keep their status, streamed or not.
        res = c.post("/api/score?stream=1", json={"text": "hi", "model": "/no/such/folder"})
        assert res.status_code == 422 and "no model folder" in res.json()["detail"]


def test_estimate_before_and_after_a_measurement(client: TestClient) -> None:
    first = client.post("/api/estimate", json={"text": LONG}).json()
    assert first["n_tokens"] > 512 and first["tokens_per_s"] is None and first["eta_s"] is None
    n = client.post("/api/score", json={"text": LONG}).json()["n_tokens"]
    assert first["n_tokens"] == n
    after = client.post("/api/estimate", json={"text": LONG}).json()
    assert after["tokens_per_s"] > 0
    # The API rounds the ETA to 0.01 s (and the rate it shows): expect that rounding, whatever
    # the machine's speed, not a relative error that a fast machine's tiny ETA cannot meet.
    assert after["eta_s"] == pytest.approx(n / after["tokens_per_s"], rel=0.02, abs=0.011)
    other = client.post("/api/estimate", json={"text": "hi", "model": "run:nothing"}).json()
    assert other["n_tokens"] is None  # never loads a model just to count


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "text is empty"),
        ("   \n\t  ", "only whitespace"),
        ("PK\x03\x04\x00\x00binary", "binary"),
        ("\x01\x02\x03\x04abc", "binary"),
    ],
)
@pytest.mark.parametrize("path", ["/api/score", "/api/estimate", "/api/compare", "/api/preview"])
def test_text_that_cannot_be_scored_is_a_422(
    client: TestClient, path: str, text: str, needle: str
) -> None:
    body: dict[str, Any] = {"text": text}
    if path == "/api/compare":
        body["model_b"] = "default"
    res = client.post(path, json=body)
    assert res.status_code == 422 and needle in res.json()["detail"]


@pytest.mark.parametrize(("seed", "needle"), [(-5, "seed"), ("", "seed"), (None, "seed")])
def test_bad_seeds_are_a_422(client: TestClient, seed: Any, needle: str) -> None:
    res = client.post("/api/preview", json={"entropies": [None, 1.0], "policy": {"seed": seed}})
    assert res.status_code == 422 and needle in res.json()["detail"]
    assert client.get("/api/draws", params={"n": 3, "seed": seed}).status_code == 422


def test_one_top_k_limit(client: TestClient) -> None:
    assert client.get("/api/inspect").json()["limits"]["max_top_k"] == MAX_TOP_K
    ok = client.post("/api/score", json={"text": "hi there", "top_k": MAX_TOP_K})
    assert ok.status_code == 200
    res = client.post("/api/score", json={"text": "hi there", "top_k": MAX_TOP_K + 1})
    assert res.status_code == 422 and str(MAX_TOP_K) in res.json()["detail"]
    from typer.testing import CliRunner

    from entrodrop.cli import app as cli

    out = CliRunner().invoke(cli, ["score", "--top-k", str(MAX_TOP_K + 1), "hi"])
    assert out.exit_code != 0 and str(MAX_TOP_K) in out.output


def test_compare_checks_model_b_before_scoring_a(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[str] = []
    real = ScoreJob.begin
    monkeypatch.setattr(
        ScoreJob, "begin", lambda self, stage="": (scored.append(stage), real(self, stage))
    )
    for bad, needle in [("/nowhere", "no model folder"), ("run:ghost", "no run")]:
        res = client.post("/api/compare", json={"text": TEXT, "model_b": bad})
        assert res.status_code == 422 and needle in res.json()["detail"]
    assert scored == []  # model A never scored


# ---------------------------------------------------------------- clients that go away


class Gate:
    """Holds every long job at each window until the test lets it go one window further."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.permits = threading.Semaphore(0)
        self.calls: list[tuple[int, int, int]] = []  # (job id, done, total) in call order
        self.jobs: list[ScoreJob] = []
        real = ScoreJob.progress

        def gated(job: ScoreJob, done: int, total: int) -> None:
            self.calls.append((id(job), done, total))
            if total > 600:  # only the long text waits
                if job not in self.jobs:
                    self.jobs.append(job)
                if done:
                    assert self.permits.acquire(timeout=PATIENCE_S)
            real(job, done, total)

        monkeypatch.setattr(ScoreJob, "progress", gated)


def raw_request(url: str, path: str, body: dict[str, Any]) -> socket.socket:
    """Send a POST and leave the socket open (closing it is the client going away)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    sock.sendall(head.encode() + data)
    return sock


def wait_for(predicate: Any, what: str, timeout: float = PATIENCE_S) -> None:
    """A safety net only: the predicates are events the test caused, not progress of time."""
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_disconnected_clients_free_the_worker(
    tiny_model_dir: Path, entrodrop_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    app = create_app(Settings(home=entrodrop_home, model=str(tiny_model_dir)))
    with live_server(app) as url:
        service = app.state.model_service
        with httpx.Client(base_url=url) as http:
            wait_for(lambda: http.get("/api/health").json()["model_loaded"], "the model")
        # A: a streamed long job, held after its first window.
        a = raw_request(url, "/api/score?stream=1", {"text": LONG})
        wait_for(lambda: len(gate.jobs) == 1, "job A to start")
        job_a = gate.jobs[0]
        # B: a plain request queued behind A, whose client leaves before it runs.
        b = raw_request(url, "/api/score", {"text": "queued and abandoned"})
        wait_for(lambda: service.status()["queue"]["pending"] == 2, "B to queue")
        b.close()
        wait_for(lambda: service.status()["queue"]["pending"] == 1, "B to leave the queue")
        # C: a plain request from a client that stays.
        result: dict[str, Any] = {}
        c = threading.Thread(
            target=lambda: result.update(
                httpx.post(
                    url + "/api/score", json={"text": "the next one"}, timeout=PATIENCE_S
                ).json()
            )
        )
        c.start()
        wait_for(lambda: service.status()["queue"]["pending"] == 2, "C to queue")
        a.close()  # A's client goes away while A holds the worker
        wait_for(lambda: job_a.cancelled, "the server to notice A's client left")
        gate.permits.release()  # A may pass its next window: it stops there instead
        c.join(timeout=PATIENCE_S)
        assert result.get("n_tokens", 0) > 0, result
    a_calls = [(d, t) for j, d, t in gate.calls if j == id(job_a)]
    assert a_calls[-1][0] < a_calls[-1][1], "A stopped before its last window"
    assert len(a_calls) < 4
    others = [j for j, _, _ in gate.calls if j != id(job_a)]
    assert len(set(others)) == 1, "B never ran; only C did"
    first_c = next(i for i, (j, _, _) in enumerate(gate.calls) if j != id(job_a))
    assert all(j != id(job_a) for j, _, _ in gate.calls[first_c:]), "C ran after A stopped"
    assert service.status()["queue"]["pending"] == 0


def test_a_plain_client_that_leaves_stops_its_running_job(
    tiny_model_dir: Path, entrodrop_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    app = create_app(Settings(home=entrodrop_home, model=str(tiny_model_dir)))
    with live_server(app) as url, httpx.Client(base_url=url) as http:
        wait_for(lambda: http.get("/api/health").json()["model_loaded"], "the model")
        sock = raw_request(url, "/api/score", {"text": LONG})
        wait_for(lambda: len(gate.jobs) == 1, "the job to start")
        sock.close()
        wait_for(lambda: gate.jobs[0].cancelled, "the server to notice")
        gate.permits.release()
        assert http.post("/api/score", json={"text": "after"}).status_code == 200
    done, total = [(d, t) for j, d, t in gate.calls if j == id(gate.jobs[0])][-1]
    assert done < total


def read_events(sock: socket.socket, until: str) -> list[dict[str, Any]]:
    """NDJSON events from a raw streamed response, up to and including the first `until` one."""
    sock.settimeout(PATIENCE_S)
    buffer, found = b"", []
    while True:
        chunk = sock.recv(65536)
        assert chunk, f"the stream ended before a {until!r} event: {found}"
        buffer += chunk
        body = buffer.split(b"\r\n\r\n", 1)[-1] if b"\r\n\r\n" in buffer else b""
        # chunked transfer encoding: event lines are the lines that parse as JSON objects
        found = [json.loads(x) for x in body.split(b"\r\n") if x.startswith(b"{")]
        if any(e["event"] == until for e in found):
            return found


def test_a_disconnect_inside_one_window_frees_the_worker_at_the_next_chunk(
    tiny_model_dir: Path,
    entrodrop_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import gc
    import logging

    caplog.set_level(logging.ERROR, logger="asyncio")
    text = TEXT * 8  # one window of the tiny model (under its 512 tokens): one pass before chunks
    held = threading.Event()
    permit = threading.Event()
    calls: list[tuple[int, int]] = []
    jobs: list[ScoreJob] = []
    real = ScoreJob.progress

    def gated(job: ScoreJob, done: int, total: int) -> None:
        if total > 200:  # the long text: held after its first chunk until the client has left
            calls.append((done, total))
            jobs.append(job)
            if done and not held.is_set():
                held.set()
                assert permit.wait(PATIENCE_S)
        real(job, done, total)

    monkeypatch.setattr(ScoreJob, "progress", gated)
    settings = Settings(home=entrodrop_home, model=str(tiny_model_dir), score_chunk_tokens=16)
    app = create_app(settings)
    with live_server(app) as url:
        service = app.state.model_service
        with httpx.Client(base_url=url) as http:
            wait_for(lambda: http.get("/api/health").json()["model_loaded"], "the model")
            assert http.post("/api/estimate", json={"text": text}).json()["n_tokens"] < 512
        long = raw_request(url, "/api/score?stream=1", {"text": text})
        wait_for(held.is_set, "the long job's first chunk")
        nxt = raw_request(url, "/api/score?stream=1", {"text": "the next one"})
        wait_for(lambda: service.status()["queue"]["pending"] == 2, "the next job to queue")
        long.close()  # the client goes away in the middle of the window
        wait_for(lambda: jobs[0].cancelled, "the server to notice the client left")
        permit.set()  # the job goes on from its first chunk: it must stop before the second
        events_next = read_events(nxt, "result")  # the next job starts, and ends
        nxt.close()
        wait_for(lambda: service.status()["queue"]["pending"] == 0, "the worker to be free")
        gc.collect()  # an unretrieved future's exception is logged when it is collected
    started = next(e for e in events_next if e["event"] == "started")
    assert started["waited_s"] >= 0
    assert events_next[-1]["result"]["waited_s"] == started["waited_s"]
    total = calls[0][1]
    assert calls == [(0, total), (16, total)]  # 2 of ~20 chunks: it stopped at the next one
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
