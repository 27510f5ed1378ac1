"""The Inspect page's JSON twins, in-process with the tiny model: shapes, policy parity, errors."""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

import pytest
import torch
from fastapi.testclient import TestClient
from waiting import PATIENCE_S, wait_sync, wait_until

import entrodrop
from app.main import create_app
from app.model_service import ModelService, QueueFull
from app.runs.storage import RunRecord
from app.settings import Settings
from entrodrop import EntroDropConfig, select_drops
from entrodrop.config import DropMode, Schedule, Selection

TEXT = "def add(a, b):\n    return a + b\n\nThe quick brown fox jumps over the lazy dog.\n"


def wait_loaded(client: TestClient, timeout: float = PATIENCE_S) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        health = client.get("/api/health").json()
        if health["model_loaded"] or health["state"] == "error":
            return health
        time.sleep(0.05)
    raise AssertionError("the model did not load in time")


def make_client(home: Path, model: Path | str, **kw: Any) -> TestClient:
    return TestClient(create_app(Settings(home=home, model=str(model), **kw)))


@pytest.fixture
def client(tiny_model_dir: Path, entrodrop_home: Path) -> Iterator[TestClient]:
    with make_client(entrodrop_home, tiny_model_dir) as c:
        assert wait_loaded(c)["model_loaded"]
        yield c


def score(client: TestClient, text: str = TEXT, **kw: Any) -> dict[str, Any]:
    res = client.post("/api/score", json={"text": text, **kw})
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def library_drops(
    entropies: list[float | None], policy: dict[str, Any], progress: float
) -> list[int]:
    config = EntroDropConfig(**policy)
    ent = torch.tensor([[math.nan if e is None else e for e in entropies]], dtype=torch.float32)
    gen = torch.Generator().manual_seed(config.seed)
    mask = select_drops(ent, config, progress, generator=gen)[0]
    return [i for i, d in enumerate(mask.tolist()) if d]


# ---------------------------------------------------------------- health, model, page


def test_health_and_model(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["model_loaded"] is True
    assert health["model"] == "tiny-llama" and health["error"] is None
    model = client.get("/api/model").json()
    assert model["info"]["architecture"] == "LlamaForCausalLM"
    assert model["info"]["n_params"] > 0


def test_loading_state_answers_503_until_ready(
    tiny_model_dir: Path, entrodrop_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_load = entrodrop.load

    def slow_load(spec: str, **kw: Any) -> Any:
        assert release.wait(PATIENCE_S)
        return real_load(spec, **kw)

    monkeypatch.setattr(entrodrop, "load", slow_load)
    with make_client(entrodrop_home, tiny_model_dir) as c:
        health = c.get("/api/health").json()
        assert health == {**health, "model_loaded": False, "state": "loading"}
        res = c.post("/api/score", json={"text": "hello"})
        assert res.status_code == 503 and int(res.headers["Retry-After"]) > 0
        assert "loading" in res.json()["detail"]
        page = c.get("/")
        assert page.status_code == 200 and "Loading model" in page.text
        release.set()
        assert wait_loaded(c)["model_loaded"]
        assert c.post("/api/score", json={"text": "hello"}).status_code == 200


def test_failed_server_model_is_reported(entrodrop_home: Path) -> None:
    with make_client(entrodrop_home, entrodrop_home / "missing-model") as c:
        health = wait_loaded(c)
        assert health["state"] == "error" and "no model folder" in health["error"]
        res = c.post("/api/score", json={"text": "hello"})
        assert res.status_code == 503 and "did not load" in res.json()["detail"]
        assert c.get("/").status_code == 200


def test_page_and_its_twin(client: TestClient, entrodrop_home: Path, tiny_model_dir: Path) -> None:
    # A run whose config carries markup: the page must show it as text, never as HTML.
    run = entrodrop_home / "runs" / "r1"
    shutil.copytree(tiny_model_dir, run / "model")
    evil = "</script><script>alert(1)</script>"
    (run / "config.json").write_text(json.dumps({"method": evil, "model": "default"}))
    page = client.get("/")
    assert page.status_code == 200
    assert "/vendor/plotly.min.js" in page.text and "/static/inspect/inspect.js" in page.text
    assert evil not in page.text and "<script>alert(1)" not in page.text
    twin = client.get("/api/inspect").json()
    assert {s["id"] for s in twin["samples"]} == {"python", "english", "reference"}
    assert twin["checkpoints"][0]["spec"] == "run:r1" and evil in twin["checkpoints"][0]["label"]
    assert twin["policy_defaults"] == EntroDropConfig().model_dump()
    assert twin["limits"]["max_score_tokens"] == 20_000
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/health", "/api/model", "/api/score", "/api/preview", "/api/compare"):
        assert path in paths


def _options(page: str, select_id: str) -> list[str]:
    select = page.split(f'<select id="{select_id}"')[1].split("</select>")[0]
    return re.findall(r'<option value="([^"]*)"', select)


def test_policy_choices_follow_the_library_config(
    entrodrop_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Selections, schedules and drop modes are the config's Literal values, labelled and helped by
    its fields: a change there (a new schedule, a new label) reaches the page and its twin."""
    fields = EntroDropConfig.model_fields
    with make_client(entrodrop_home, "default", load_model_on_startup=False) as c:
        choices = c.get("/api/inspect").json()["choices"]
        assert choices["selection"]["options"] == list(get_args(Selection))
        assert choices["schedule"]["options"] == list(get_args(Schedule))
        assert choices["drop_mode"]["options"] == list(get_args(DropMode))
        assert choices["drop_mode"]["help"] == fields["drop_mode"].description
        page = c.get("/").text
        assert _options(page, "schedule") == list(get_args(Schedule))
        assert _options(page, "drop-mode") == list(get_args(DropMode))
        radios = re.findall(r'name="selection" value="([^"]*)"', page)
        assert radios == list(get_args(Selection))

        staircase = Literal["sigmoid", "linear", "cosine", "constant", "staircase"]
        monkeypatch.setattr(fields["schedule"], "annotation", staircase)
        monkeypatch.setattr(fields["drop_mode"], "title", "what a drop does")
        page = c.get("/").text
        choices = c.get("/api/inspect").json()["choices"]
    assert _options(page, "schedule") == list(get_args(staircase))
    assert '<label for="drop-mode">what a drop does</label>' in page
    assert choices["schedule"]["options"] == list(get_args(staircase))
    assert choices["drop_mode"]["label"] == "what a drop does"


# ---------------------------------------------------------------- score


def test_score_is_the_token_json(client: TestClient) -> None:
    body = score(client, top_k=3)
    assert body["model"] == "tiny-llama" and body["n_tokens"] == len(body["tokens"])
    assert "".join(t["text"] for t in body["tokens"]) == TEXT
    first, second = body["tokens"][0], body["tokens"][1]
    assert first["entropy"] is None and first["surprisal"] is None and first["top"] == []
    assert second["entropy"] >= 0 and second["rank"] >= 1
    assert math.isclose(second["prob"], math.exp(-second["surprisal"]), rel_tol=1e-6)
    assert len(second["top"]) == 3 and set(second["top"][0]) == {"id", "text", "prob"}
    assert set(body["summary"]) == {"mean_entropy", "mean_surprisal", "perplexity"}


def test_score_runs_for_a_finished_run(
    client: TestClient, entrodrop_home: Path, tiny_model_dir: Path
) -> None:
    shutil.copytree(tiny_model_dir, entrodrop_home / "runs" / "abc" / "model")
    (entrodrop_home / "runs" / "unfinished").mkdir()
    assert client.get("/api/checkpoints").json() == [
        {
            "spec": "run:abc",
            "label": "abc: final",
            "name": "abc",
            "run_id": "abc",
            "which": "final",
            "step": None,
            "run_label": "abc",
            "option": "final model",
        }  # fmt: skip
    ]
    body = score(client, model="run:abc")
    assert body["model"] == "run:abc" and body["spec"] == "run:abc"
    # A run the runs table has named is called by its name (a study names its runs).
    now = time.time()
    storage = client.app.state.storage  # type: ignore[attr-defined]
    storage.create_run(
        RunRecord(
            id="abc", created_at=now, queued_at=now, updated_at=now, status="succeeded",
            config={}, launcher={}, name="lr sweep 1",
        )
    )  # fmt: skip
    (listed,) = client.get("/api/checkpoints").json()
    assert (listed["name"], listed["run_label"], listed["label"]) == (
        "lr sweep 1",
        "lr sweep 1",
        "lr sweep 1: final",
    )


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"text": ""}, "text is empty"),
        ({}, "send one of `text`, `messages`"),
        ({"text": 5}, "text"),
        ({"text": "x", "colour": "red"}, "unknown field 'colour'"),
        ({"text": "x", "top_k": -1}, "top_k"),
        ({"text": "x", "top_k": 1000}, "top_k"),
    ],
)
def test_score_rejects_bad_bodies(client: TestClient, body: dict[str, Any], needle: str) -> None:
    res = client.post("/api/score", json=body)
    assert res.status_code == 422
    assert isinstance(res.json()["detail"], str) and needle in res.json()["detail"]


def test_malformed_json_is_a_readable_422(client: TestClient) -> None:
    res = client.post(
        "/api/score", content=b'{"text": ', headers={"content-type": "application/json"}
    )
    assert res.status_code == 422 and "not valid JSON" in res.json()["detail"]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("/no/such/folder", "no model folder"),
        ("run:ghost", "no run"),
        ("run:../x", "invalid run id"),
    ],
)
def test_unloadable_model_is_a_4xx(client: TestClient, spec: str, needle: str) -> None:
    res = client.post("/api/score", json={"text": "hello", "model": spec})
    assert res.status_code == 422 and needle in res.json()["detail"]


def test_folder_that_is_not_a_model(client: TestClient, entrodrop_home: Path) -> None:
    (entrodrop_home / "empty").mkdir()
    res = client.post("/api/score", json={"text": "hi", "model": str(entrodrop_home / "empty")})
    assert res.status_code == 422 and "no config.json" in res.json()["detail"]


def test_token_cap_is_413_with_the_limit(tiny_model_dir: Path, entrodrop_home: Path) -> None:
    with make_client(entrodrop_home, tiny_model_dir, max_score_tokens=10) as c:
        wait_loaded(c)
        res = c.post("/api/score", json={"text": TEXT})
        assert res.status_code == 413 and "limit is 10 tokens" in res.json()["detail"]
        huge = c.post("/api/score", json={"text": "x" * 10_000})
        assert huge.status_code == 413 and "10 tokens" in huge.json()["detail"]
        assert c.get("/api/draws?n=11").status_code == 413
        res = c.post("/api/preview", json={"entropies": [None] + [1.0] * 10})
        assert res.status_code == 413
        assert c.post("/api/score", json={"text": "a b"}).status_code == 200


# ---------------------------------------------------------------- preview = select_drops


POLICIES = [
    ({}, 1.0),
    ({"quantile": 0.8, "seed": 7}, 0.6),
    ({"selection": "threshold", "threshold": 5.9, "rate_max": 1.0, "schedule": "constant"}, 0.0),
    ({"schedule": "linear", "rate_max": 0.9, "seed": 123}, 0.35),
    ({"schedule": "cosine", "quantile": 0.3}, 0.8),
    ({"steepness": 1000.0, "midpoint": 1.0}, 0.0),
]


@pytest.mark.parametrize(("policy", "progress"), POLICIES)
def test_preview_equals_select_drops(
    client: TestClient, policy: dict[str, Any], progress: float
) -> None:
    scored = score(client)
    entropies = [t["entropy"] for t in scored["tokens"]]
    expected = library_drops(entropies, policy, progress)
    for body in (
        {"entropies": entropies, "policy": policy, "progress": progress},
        {"text": TEXT, "policy": policy, "progress": progress},
    ):
        res = client.post("/api/preview", json=body)
        assert res.status_code == 200, res.text
        preview = res.json()
        assert [t["index"] for t in preview["tokens"] if t["dropped"]] == expected
        assert preview["n_dropped"] == len(expected)
        assert all(t["candidate"] for t in preview["tokens"] if t["dropped"])
        assert not preview["tokens"][0]["candidate"]
        assert preview["rate"] == entrodrop.drop_rate(progress, EntroDropConfig(**policy))
    assert preview["tokens"][1]["text"] == scored["tokens"][1]["text"]


def test_preview_candidates_follow_the_cut(client: TestClient) -> None:
    res = client.post(
        "/api/preview",
        json={"entropies": [None, 1.0, 2.0, 3.0, 4.0, 5.0], "policy": {"quantile": 0.5}},
    )
    body = res.json()
    assert body["tau"] == 3.0 and body["n_scored"] == 5
    assert [t["candidate"] for t in body["tokens"]] == [False, True, True, True, False, False]
    none = client.post("/api/preview", json={"entropies": [None]}).json()
    assert none["tau"] is None and none["n_candidates"] == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "send one of `text`, `messages`, `example` or `entropies`"),
        (
            {"text": "a", "entropies": [None]},
            "send one of `text`, `messages`, `example` or `entropies`",
        ),
        ({"entropies": []}, "entropies is empty"),
        ({"entropies": [None, -1.0]}, "entropies[1]"),
        ({"entropies": [None, 1.0], "progress": 1.5}, "progress"),
        ({"entropies": [None, 1.0], "policy": {"selection": "threshold"}}, "needs a 'threshold'"),
        ({"entropies": [None, 1.0], "policy": {"quantile": 1.0}}, "quantile"),
        ({"entropies": [None, 1.0], "policy": {"rate": 0.5}}, "unknown field 'policy.rate'"),
    ],
)
def test_preview_rejects_bad_bodies(client: TestClient, body: dict[str, Any], needle: str) -> None:
    res = client.post("/api/preview", json=body)
    assert res.status_code == 422 and needle in res.json()["detail"]


def test_nan_is_refused(client: TestClient) -> None:
    raw = b'{"entropies": [null, NaN], "progress": 0.5}'
    res = client.post("/api/preview", content=raw, headers={"content-type": "application/json"})
    assert res.status_code == 422


def test_draws_are_the_generator_draws(client: TestClient) -> None:
    body = client.get("/api/draws?n=50&seed=9").json()
    expected = torch.rand((1, 50), generator=torch.Generator().manual_seed(9))[0].tolist()
    assert body == {"seed": 9, "n": 50, "u": expected}
    assert client.get("/api/draws?n=0").status_code == 422
    assert client.get("/api/draws?n=5&seed=-1").status_code == 422


# ---------------------------------------------------------------- compare


def test_compare_same_tokenizer_gives_a_difference(
    client: TestClient, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    other = tmp_path / "tuned"
    shutil.copytree(tiny_model_dir, other)
    weights = load_file(str(other / "model.safetensors"))
    torch.manual_seed(1)
    save_file(
        {k: v + 0.05 * torch.randn_like(v) for k, v in weights.items()},
        str(other / "model.safetensors"),
    )
    res = client.post("/api/compare", json={"text": TEXT, "model_b": str(other)})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["same_tokens"] is True and body["note"] is None
    a, b = body["a"]["tokens"], body["b"]["tokens"]
    assert body["delta"][0] is None
    for i in range(1, len(a)):
        assert math.isclose(body["delta"][i], b[i]["entropy"] - a[i]["entropy"], abs_tol=1e-9)
    assert body["delta_summary"]["mean_abs_delta"] > 0


def test_compare_different_tokenizers_side_by_side(client: TestClient, tmp_path: Path) -> None:
    from tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "other-vocab", vocab_size=300)
    body = client.post("/api/compare", json={"text": TEXT, "model_b": str(other)}).json()
    assert body["same_tokens"] is False and body["delta"] is None
    assert "tokenize the text differently" in body["note"]
    assert body["a"]["n_tokens"] != body["b"]["n_tokens"]


def test_compare_bad_second_model(client: TestClient) -> None:
    res = client.post("/api/compare", json={"text": TEXT, "model_b": "/nowhere"})
    assert res.status_code == 422 and "no model folder" in res.json()["detail"]


# ---------------------------------------------------------------- the queue


def test_queue_is_bounded(entrodrop_home: Path) -> None:
    service = ModelService(Settings(home=entrodrop_home, score_queue_size=1))
    gate = threading.Event()

    async def scenario() -> None:
        first = asyncio.ensure_future(service.run(gate.wait, PATIENCE_S))
        second = asyncio.ensure_future(service.run(lambda: "second"))
        await wait_until(lambda: service.status()["queue"]["pending"] == 2, PATIENCE_S, "two jobs")
        with pytest.raises(QueueFull) as info:
            await service.run(lambda: "third")
        assert info.value.retry_after >= 1
        gate.set()
        assert await first is True and await second == "second"
        assert await service.run(lambda: "again") == "again"  # room again once drained
        await service.stop()

    asyncio.run(scenario())


def test_queue_full_is_503_with_retry_after(tiny_model_dir: Path, entrodrop_home: Path) -> None:
    gate = threading.Event()
    with make_client(entrodrop_home, tiny_model_dir, score_queue_size=1) as c:
        wait_loaded(c)
        service = c.app.state.model_service  # type: ignore[attr-defined]
        assert c.portal is not None
        blockers = [c.portal.start_task_soon(service.run, gate.wait, PATIENCE_S) for _ in range(2)]
        wait_sync(lambda: service.status()["queue"]["pending"] == 2, PATIENCE_S, "two queued jobs")
        res = c.post("/api/score", json={"text": "hello"})
        assert res.status_code == 503 and int(res.headers["Retry-After"]) >= 1
        assert "limit 1" in res.json()["detail"]
        gate.set()
        assert all(b.result(timeout=PATIENCE_S) for b in blockers)
        assert c.post("/api/score", json={"text": "hello"}).status_code == 200


# ---------------------------------------------------------------- the real default model


@pytest.mark.slow
def test_default_model_finds_predictable_tokens(default_loaded: Any, entrodrop_home: Path) -> None:
    """With SmolLM2 the obvious continuations are low-entropy candidates; the API agrees."""
    from app.inspect import data as inspection

    service = ModelService(Settings(home=entrodrop_home, model="default"))
    service._cache["default"] = default_loaded  # reuse the session's model: no second load
    service._state = "ready"
    text = "for i in range(10):\n    print(i)\n"
    scored = inspection.score_job(service, "default", text, 5)
    paren = next(t for t in scored["tokens"] if t["text"] == "(")  # "range" -> "(" is near certain
    assert paren["entropy"] < 0.5 and paren["rank"] == 1
    entropies = [t["entropy"] for t in scored["tokens"]]
    preview = inspection.preview(entropies, EntroDropConfig(), 1.0)
    assert preview["tokens"][paren["index"]]["candidate"]
    assert [t["index"] for t in preview["tokens"] if t["dropped"]] == library_drops(
        entropies, {}, 1.0
    )


def test_text_file_reads_a_file_as_the_upload_does_and_stores_nothing(
    tiny_model_dir: Path, entrodrop_home: Path
) -> None:
    with make_client(entrodrop_home, tiny_model_dir, max_upload_bytes=100) as client:
        ok = client.post("/api/text-file", files={"file": ("a/b/notes.txt", b"x = 1\n")})
        assert ok.status_code == 200 and ok.json() == {
            "name": "notes.txt",
            "text": "x = 1\n",
            "n_chars": 6,
        }
        for name, content, status, words in [
            ("empty.txt", b"  \n", 422, "empty.txt is empty"),
            ("latin1.txt", "caf\u00e9".encode("latin-1"), 422, "is not UTF-8 text (byte 3)"),
            ("x.bin", b"\x00\x01", 422, "looks like a binary file"),
            ("big.txt", b"x" * 101, 413, "100 bytes"),
        ]:
            res = client.post("/api/text-file", files={"file": (name, content)})
            assert res.status_code == status and words in res.json()["detail"], res.text
            if status == 422 and name.endswith(".txt"):  # the words a dataset upload gets
                upload = client.post("/api/uploads", files={"file": (name, content)})
                assert upload.json()["detail"] == res.json()["detail"]
        sent_as_json = client.post("/api/text-file", json={"text": "x"})
        assert sent_as_json.status_code == 415  # a file, as multipart, only
        assert not list((entrodrop_home / "uploads").glob("notes*"))
