"""/docs is the interface: walk /openapi.json and check every /api answer against its documented model.

Every GET the fixtures can call, and every write they can make valid, is sent to a server with a
real (tiny) model, finished runs, a study and an upload; each 2xx JSON answer is validated against
the operation's documented response schema (JSON Schema 2020-12, as OpenAPI 3.1 writes it). An
operation the walk does not reach must be listed in NOT_WALKED with the reason, so a new endpoint
without a checked model fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from runs_helpers import FAKE_TRAINER, SEED_MODES, wait_sync
from waiting import PATIENCE_S

from app.main import create_app
from app.settings import Settings

# Streams and files: their schema is a string of another media type.
NOT_JSON = {
    ("get", "/api/runs/{run_id}/metrics.csv"),
    ("get", "/api/studies/{study_id}.csv"),
    ("get", "/api/runs/{run_id}/events"),
    ("get", "/api/runs/{run_id}/export.zip"),
}
NOT_WALKED = {
    # DELETE /api/session answers only on a server with an access token (tests/security).
    ("delete", "/api/session"): "a shared server's logout: tests/security/test_sessions.py",
    # The walk's runs are the fake trainer's: no weights, no token record. Real runs cover these.
    ("get", "/api/runs/{run_id}/export.zip"): "tests/runs/test_api_after_training.py",
    ("get", "/api/runs/{run_id}/tokens"): "tests/tokens/test_tokens_api.py",
    ("get", "/api/compare/tokens"): "tests/tokens/test_tokens_api.py",
    ("get", "/api/studies/{study_id}/tokens"): "tests/tokens/test_tokens_api.py",
    ("post", "/api/runs/{run_id}/evaluate"): "tests/runs/test_api_evaluate.py",
}


class Walk:
    """The fixture's server and what it holds, plus every answer checked so far."""

    def __init__(self, client: TestClient, spec: dict[str, Any]) -> None:
        self.client = client
        self.spec = spec
        self.checked: set[tuple[str, str]] = set()
        self.values: dict[str, str] = {}

    def schema(self, method: str, path: str, status: int) -> dict[str, Any]:
        response = self.spec["paths"][path][method]["responses"][str(status)]
        return dict(response["content"]["application/json"]["schema"])

    def call(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        """Send one request to a documented operation; check its answer against its model."""
        url = path.format(**self.values)
        res = self.client.request(method.upper(), url, **kw)
        assert res.status_code == status, (method, url, res.status_code, res.text[:500])
        if (method, path) not in NOT_JSON:
            root = {**self.schema(method, path, status), "components": self.spec["components"]}
            errors = [
                f"{'/'.join(map(str, e.instance_path))}: {e.message}"
                for e in jsonschema_rs.validator_for(root).iter_errors(res.json())
            ]
            assert not errors, (method, url, errors[:5])
        self.checked.add((method, path))
        return res.json() if (method, path) not in NOT_JSON else res.text


@pytest.fixture
def walk(entrodrop_home: Path, tiny_model_dir: Path) -> Iterator[Walk]:
    settings = Settings(home=entrodrop_home, model=str(tiny_model_dir))
    app = create_app(settings)
    app.state.jobs.entry = (str(FAKE_TRAINER),)
    app.state.jobs.poll_interval = 0.1
    with TestClient(app) as client:
        wait_sync(lambda: client.get("/api/health").json()["model_loaded"], PATIENCE_S, "model")
        yield Walk(client, client.get("/openapi.json").json())


def _finished(walk: Walk, run_id: str) -> bool:
    return walk.client.get(f"/api/runs/{run_id}").json()["status"] == "succeeded"


def _writes(walk: Walk, tiny: str) -> None:
    """Every write a fixture can make valid, in an order that leaves data for the reads."""
    text = {"text": "def mean(xs):\n    return sum(xs) / len(xs)\n"}
    walk.call("post", "/api/score", json=text)
    walk.call("post", "/api/compare", json={**text, "model_b": tiny})
    walk.call("post", "/api/estimate", json=text)
    walk.call("post", "/api/preview", json=text)
    walk.call("post", "/api/preview", json={"entropies": [None, 0.5, 2.0, 0.1]})
    walk.call("post", "/api/generate", json={"prompt": "def mean", "max_new_tokens": 3})
    walk.call("post", "/api/text-file", files={"file": ("t.txt", b"one line\n")})
    upload = walk.call("post", "/api/uploads", 201, files={"file": ("a.txt", b"some text\n" * 40)})
    body = {"model": tiny, "dataset": upload["dataset"], "seq_len": 16}
    walk.call("post", "/api/runs/check", json={**body, "compare_with": "none"})
    walk.call("post", "/api/runs/preview", json=body)
    walk.call("post", "/api/runs/data", json=body)
    pair = walk.call("post", "/api/runs", 201, json={"compare_with": "random"})["ids"]
    study = {"name": "walk", "variants": ["none"], "seeds": [0]}
    walk.call("post", "/api/studies/check", json=study)
    walk.values["study_id"] = walk.call("post", "/api/studies", 201, json=study)["id"]
    wait_sync(lambda: all(_finished(walk, r) for r in pair), PATIENCE_S, "the pair")
    walk.values |= {"run_id": pair[0], "runs": ",".join(pair)}
    walk.call("patch", "/api/runs/{run_id}", json={"name": "first", "tags": ["walk"]})
    slow = walk.call("post", "/api/runs", 201, json={"seed": SEED_MODES["slow"]})["id"]
    walk.values["run_id"] = slow
    wait_sync(lambda: walk.client.get(f"/api/runs/{slow}").json()["status"] == "running")
    walk.call("post", "/api/runs/{run_id}/cancel")
    wait_sync(lambda: walk.client.get(f"/api/runs/{slow}").json()["status"] == "cancelled")
    walk.call("post", "/api/runs/{run_id}/restart")
    walk.call("post", "/api/runs/{run_id}/cancel")
    wait_sync(lambda: walk.client.get(f"/api/runs/{slow}").json()["status"] == "cancelled")
    ckpt = walk.call("post", "/api/runs", 201, json={"seed": SEED_MODES["ckpt"]})["id"]
    walk.values["run_id"] = ckpt
    ready = walk.client.app.state.settings.runs_path / ckpt / "checkpoint-3"  # type: ignore[attr-defined]
    wait_sync(ready.is_dir, PATIENCE_S, "a checkpoint")
    walk.call("post", "/api/runs/{run_id}/cancel")
    wait_sync(lambda: walk.client.get(f"/api/runs/{ckpt}").json()["status"] == "cancelled")
    walk.call("post", "/api/runs/{run_id}/resume")
    walk.call("post", "/api/runs/{run_id}/cancel")
    wait_sync(lambda: walk.client.get(f"/api/runs/{ckpt}").json()["status"] == "cancelled")
    busy = {"name": "busy", "variants": ["none"], "seeds": [SEED_MODES["slow"]]}
    finished_study = walk.values["study_id"]
    walk.values["study_id"] = walk.call("post", "/api/studies", 201, json=busy)["id"]
    walk.call("post", "/api/studies/{study_id}/cancel")
    walk.values["study_id"] = finished_study


def _reads(walk: Walk) -> None:
    """Every GET, its required query parameters from the fixture's data."""
    queries = {"runs": walk.values["runs"], "n": "5"}
    walk.values["run_id"] = walk.values["runs"].split(",")[0]
    for path, ops in walk.spec["paths"].items():
        op = ops.get("get")
        if not path.startswith("/api/") or op is None or ("get", path) in NOT_WALKED:
            continue
        params = {
            p["name"]: queries[p["name"]]
            for p in op.get("parameters", [])
            if p["in"] == "query" and p.get("required")
        }
        if path == "/api/runs/{run_id}/events":  # a finished run's stream ends by itself
            with walk.client.stream("GET", path.format(**walk.values)) as res:
                assert res.status_code == 200 and "event: end" in "".join(res.iter_text())
            walk.checked.add(("get", path))
            continue
        walk.call("get", path, params=params)


def test_every_api_answer_matches_its_documented_model(walk: Walk, tiny_model_dir: Path) -> None:
    _writes(walk, str(tiny_model_dir))
    _reads(walk)
    walk.call("delete", "/api/studies/{study_id}", params={"runs": "true"})
    walk.call("delete", "/api/runs/{run_id}")
    documented = {
        (method, path)
        for path, ops in walk.spec["paths"].items()
        if path.startswith("/api/")
        for method in ops
    }
    missed = documented - walk.checked - set(NOT_WALKED)
    assert not missed, f"operations the walk never checked: {sorted(missed)}"


def test_every_api_operation_has_a_named_response_model(walk: Walk) -> None:
    for path, ops in walk.spec["paths"].items():
        for method, op in ops.items():
            if not path.startswith("/api/") or (method, path) in NOT_JSON:
                continue
            ok = next(r for code, r in op["responses"].items() if code.startswith("2"))
            schema = ok["content"]["application/json"]["schema"]
            named = schema.get("$ref") or schema.get("items", {}).get("$ref")
            assert named, (method, path, json.dumps(schema)[:200])
