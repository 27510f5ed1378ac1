"""Inspect's conversation input: POST /api/score and /api/preview with messages or an example."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from data_files import CONVERSATION, variant
from fastapi.testclient import TestClient
from test_api_inspect import make_client, wait_loaded

from entrodrop import EntroDropConfig
from entrodrop.data import load_dataset, tokenize_conversations
from entrodrop.training.collator import EntroDropCollator
from entrodrop.training.drops import DropPolicy


@pytest.fixture
def client(tiny_chat_model_dir: Path, entrodrop_home: Path) -> Iterator[TestClient]:
    with make_client(entrodrop_home, tiny_chat_model_dir) as c:
        assert wait_loaded(c)["model_loaded"]
        yield c


def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    res = client.post(path, json=body)
    assert res.status_code == 200, res.text
    out: dict[str, Any] = res.json()
    return out


def test_a_conversation_scores_with_its_trained_mask(client: TestClient) -> None:
    body = post(client, "/api/score", {"messages": CONVERSATION, "top_k": 2})
    tokens = body["tokens"]
    trained = "".join(t["text"] for t in tokens if t["trained"])
    assert trained == CONVERSATION[2]["content"] + "<|im_end|>\n"
    assert all(t["role"] == "assistant" for t in tokens if t["trained"])
    user = "".join(t["text"] for t in tokens if t["role"] == "user" and t["segment"] == "content")
    assert user == CONVERSATION[1]["content"]
    conversation = body["conversation"]
    assert conversation["messages"] == CONVERSATION
    assert conversation["n_trained"] == sum(t["trained"] for t in tokens)
    everything = post(client, "/api/score", {"messages": CONVERSATION, "train_on": "all"})
    assert sum(t["trained"] for t in everything["tokens"]) == len(tokens) - 1


def test_the_conversation_preview_drops_what_the_collator_drops(
    client: TestClient, tiny_chat_loaded: Any
) -> None:
    policy = {"rate_max": 1.0, "quantile": 0.7, "schedule": "constant"}
    out = post(client, "/api/preview", {"messages": CONVERSATION, "policy": policy})
    tokens = out["tokens"]
    assert out["n_dropped"] > 0 and all(t["trained"] for t in tokens if t["dropped"])
    assert all(t["trained"] for t in tokens if t["candidate"])
    # The collator on the conversation as training renders it, with the entropies the server's
    # model gave (its precision may differ from this test's float32 copy): the same drops.
    examples = tokenize_conversations([CONVERSATION], tiny_chat_loaded.tokenizer, 4096)
    ids = examples.ids[0]
    assert [t["id"] for t in tokens] == ids
    entropy = torch.tensor([math.nan if t["entropy"] is None else t["entropy"] for t in tokens])
    features = [{"input_ids": torch.tensor(ids), "labels": torch.tensor(
        [i if m else -100 for i, m in zip(ids, examples.trained[0], strict=True)]
    ), "entropies": entropy}]  # fmt: skip
    cfg = EntroDropConfig(**policy)
    collator = EntroDropCollator(policy=DropPolicy(cfg, tau=out["tau"]))
    drops, _ = collator.select(EntroDropCollator()(features), 1.0)
    assert [t["dropped"] for t in tokens] == drops[0].tolist()
    # Re-marking from a score's entropies and trained mask gives the same again (no model).
    again = post(
        client,
        "/api/preview",
        {
            "entropies": [t["entropy"] for t in tokens],
            "trained": [t["trained"] for t in tokens],
            "policy": policy,
        },
    )
    assert [t["dropped"] for t in again["tokens"]] == [t["dropped"] for t in tokens]


def test_an_uploaded_files_examples_page_by_index(client: TestClient) -> None:
    raw = "".join(json.dumps(variant("alpaca", i)) + "\n" for i in range(3)).encode()
    uploaded = client.post("/api/uploads", files={"file": ("qa.jsonl", raw)}).json()
    ref = {"dataset": uploaded["dataset"], "index": 2}
    body = post(client, "/api/score", {"example": ref})
    conversation = body["conversation"]
    assert conversation["index"] == 2 and conversation["n_examples"] == 3
    assert conversation["format"] == "alpaca"
    assert conversation["messages"][-1]["content"] == "The number of items in a container 2."
    assert any(t["trained"] for t in body["tokens"])
    res = client.post("/api/score", json={"example": {**ref, "index": 3}})
    assert res.status_code == 422 and "jsonl has 3 examples (0 to 2)" in res.json()["detail"]
    builtin = post(client, "/api/preview", {"example": {"dataset": "python-qa", "index": 0}})
    first = load_dataset("python-qa")
    assert builtin["conversation"]["messages"][1] == first.train[0][1]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": []}, "messages is empty"),
        ({"messages": CONVERSATION[:2]}, "missing assistant turn"),
        ({"messages": [CONVERSATION[2], CONVERSATION[1]]}, "roles out of order"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": 3}]}, "content"),
        ({"messages": CONVERSATION, "text": "x"}, "send one of"),
        ({"example": {"dataset": "/etc/passwd"}}, "example.dataset"),
    ],
)
def test_bad_conversations_are_422(client: TestClient, body: dict[str, Any], needle: str) -> None:
    res = client.post("/api/score", json=body)
    assert res.status_code == 422 and needle in res.json()["detail"], res.text


def test_a_model_without_a_template_answers_422(tiny_model_dir: Path, entrodrop_home: Path) -> None:
    with make_client(entrodrop_home, tiny_model_dir) as client:
        assert wait_loaded(client)["model_loaded"]
        res = client.post("/api/score", json={"messages": CONVERSATION})
        assert res.status_code == 422 and "has no chat template" in res.json()["detail"]
