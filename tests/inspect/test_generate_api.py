"""POST /api/generate: deterministic by seed, streamed token by token through the scoring worker,
bounded, and stopped at the next token when its client goes away."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import live_server
from fastapi.testclient import TestClient
from test_api_inspect import make_client, wait_loaded
from test_score_jobs import events, raw_request, read_events, wait_for
from waiting import PATIENCE_S

from app.main import create_app
from app.score_job import ScoreJob
from app.settings import Settings

PROMPT = "def add(a, b):\n    return"


@pytest.fixture
def client(tiny_model_dir: Path, entrodrop_home: Path) -> Iterator[TestClient]:
    with make_client(entrodrop_home, tiny_model_dir, max_new_tokens=64) as c:
        assert wait_loaded(c)["model_loaded"]
        yield c


def generate(client: TestClient, **body: Any) -> dict[str, Any]:
    res = client.post("/api/generate", json={"prompt": PROMPT, **body})
    assert res.status_code == 200, res.text
    return res.json()


def test_generation_is_deterministic_by_seed(
    client: TestClient, tiny_model_dir: Path, tmp_path: Path
) -> None:
    sampled = {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 30}
    a = generate(client, seed=5, **sampled)
    # Side by side is two requests with the same prompt and seed (here: the server's model and
    # a copy of its folder, so both must draw the same tokens).
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    b = generate(client, seed=5, model=str(copy), **sampled)
    assert [t["id"] for t in a["tokens"]] == [t["id"] for t in b["tokens"]]
    assert a["text"] == b["text"] and a["spec"] != b["spec"]
    other = generate(client, seed=6, **sampled)
    assert [t["id"] for t in other["tokens"]] != [t["id"] for t in a["tokens"]]
    greedy = generate(client, max_new_tokens=5)
    assert greedy["temperature"] == 0.0 and all(t["rank"] == 1 for t in greedy["tokens"])
    assert a["n_tokens"] == 30 and a["stop_reason"] == "max_new_tokens"
    assert a["text"] == "".join(t["text"] for t in a["tokens"])
    assert a["summary"]["mean_entropy"] > 0 and a["elapsed_s"] >= 0 and a["waited_s"] >= 0
    token = a["tokens"][0]
    assert set(token) == {
        "index", "id", "text", "entropy", "surprisal", "prob", "rank", "top", "sampled_entropy"
    }  # fmt: skip


def test_generation_streams_token_by_token(client: TestClient) -> None:
    got = events(client.post("/api/generate?stream=1", json={"prompt": PROMPT, "seed": 1}))
    kinds = [e["event"] for e in got]
    assert kinds[:2] == ["queued", "started"] and kinds[-1] == "result"
    assert got[1]["waited_s"] >= 0
    prompt = [e for e in got if e["event"] == "progress"]
    assert prompt[0]["stage"] == "prompt" and prompt[-1]["done"] == prompt[-1]["total"]
    tokens = [e["token"] for e in got if e["event"] == "token"]
    result = got[-1]["result"]
    assert tokens == result["tokens"] and len(tokens) == 64
    assert kinds.index("token") > max(i for i, k in enumerate(kinds) if k == "progress")


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"max_new_tokens": 65}, 422, "ENTRODROP_MAX_NEW_TOKENS"),
        ({"max_new_tokens": 0}, 422, "max_new_tokens"),
        ({"temperature": -0.5}, 422, "temperature"),
        ({"top_p": 0}, 422, "top_p"),
        ({"prompt": ""}, 422, "empty"),
        ({"chat": True}, 422, "no chat template"),
        ({"model": "/no/such/folder"}, 422, "no model folder"),
        ({"prompt": "x" * 2_000}, 422, "no room left in the model's context of 512"),
        ({"prompt": "x" * 1_300_000}, 413, "far over the limit"),
        ({"stream": 1}, 422, "unknown field"),
    ],
)
def test_bad_generation_requests(
    client: TestClient, body: dict[str, Any], status: int, needle: str
) -> None:
    res = client.post("/api/generate", json={"prompt": PROMPT, **body})
    assert res.status_code == status and needle in res.json()["detail"], res.text


def test_a_client_that_leaves_stops_generation_at_the_next_token(
    tiny_model_dir: Path, entrodrop_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held, permit = threading.Event(), threading.Event()
    tokens: list[ScoreJob] = []
    real = ScoreJob.emit

    def gated(job: ScoreJob, event: dict[str, Any]) -> None:
        real(job, event)
        if event["event"] == "token" and event["token"]["index"] == 0 and not held.is_set():
            tokens.append(job)
            held.set()
            assert permit.wait(PATIENCE_S)  # the worker waits here, after the first token
        elif event["event"] == "token" and tokens and job is tokens[0]:
            tokens.append(job)  # a token after the client left: must not happen

    monkeypatch.setattr(ScoreJob, "emit", gated)
    app = create_app(Settings(home=entrodrop_home, model=str(tiny_model_dir)))
    with live_server(app) as url:
        service = app.state.model_service
        with httpx.Client(base_url=url) as http:
            wait_for(lambda: http.get("/api/health").json()["model_loaded"], "the model")
        body = {"prompt": PROMPT, "max_new_tokens": 200, "temperature": 1.0}
        first = raw_request(url, "/api/generate?stream=1", body)
        wait_for(held.is_set, "the first token")
        nxt = raw_request(url, "/api/generate?stream=1", {"prompt": "x", "max_new_tokens": 2})
        wait_for(lambda: service.status()["queue"]["pending"] == 2, "the next job to queue")
        first.close()
        wait_for(lambda: tokens[0].cancelled, "the server to notice the client left")
        permit.set()
        got = read_events(nxt, "result")  # the next job starts, and ends
        nxt.close()
        wait_for(lambda: service.status()["queue"]["pending"] == 0, "the worker to be free")
    assert [e["event"] for e in got][:2] == ["queued", "started"]
    assert got[-1]["result"]["n_tokens"] == 2
    assert len(tokens) == 1  # the first job made one token of 200, then stopped
