"""The API's contract across features: a response schema for every /api operation, one error-body
shape for inspect and runs, and the one `quick` preset seen the same by the form, API and CLI."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from waiting import PATIENCE_S

from app.main import create_app
from app.model_service import ModelService
from app.runs.storage import RunRecord
from app.settings import Settings
from entrodrop.cli import app as cli
from entrodrop.config import PRESETS, RunConfig
from entrodrop.models import ModelLoadError

STREAMS = {
    "/api/runs/{run_id}/metrics.csv": "text/csv",
    "/api/studies/{study_id}.csv": "text/csv",
    "/api/runs/{run_id}/events": "text/event-stream",
    "/api/runs/{run_id}/export.zip": "application/zip",
}


@pytest.fixture
def client(entrodrop_home: Path) -> Iterator[TestClient]:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    with TestClient(app) as c:
        yield c


def _check_error(res: Any, status: int) -> dict[str, Any]:
    assert res.status_code == status, res.text
    body = res.json()
    assert set(body) <= {"detail", "errors"} and isinstance(body["detail"], str) and body["detail"]
    assert "errors" not in body or (isinstance(body["errors"], list) and body["errors"])
    return body  # type: ignore[no-any-return]


def test_every_api_operation_documents_a_2xx_response_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    api = {p: ops for p, ops in paths.items() if p.startswith("/api/")}
    assert "/api/runs" in api and "/api/score" in api and "/api/health" in api
    for path, ops in api.items():
        for method, op in ops.items():
            ok = {c: r for c, r in op["responses"].items() if c.startswith("2")}
            assert ok, f"{method} {path} has no 2xx response"
            content = next(iter(ok.values())).get("content", {})
            media = STREAMS.get(path, "application/json")
            assert media in content, f"{method} {path} declares {list(content)}, not {media}"
            schema = content[media].get("schema", {})
            assert schema and schema != {}, f"{method} {path} has no response schema"
            if media == "application/json":
                assert "$ref" in schema or "items" in schema or "type" in schema, (method, path)


def test_one_error_body_shape_for_inspect_and_runs(client: TestClient) -> None:
    # 404: a runs resource that does not exist, and a path that does not exist at all.
    assert "no run" in _check_error(client.get("/api/runs/nope"), 404)["detail"]
    _check_error(client.get("/api/no-such-endpoint"), 404)
    # 422 from FastAPI's own validation (inspect) and from the runs validator: same shape.
    inspect_422 = _check_error(client.post("/api/score", json={"text": ""}), 422)
    runs_422 = _check_error(client.post("/api/runs", json={"learning_rate": -1}), 422)
    assert inspect_422["errors"] and runs_422["errors"]
    for err in inspect_422["errors"] + runs_422["errors"]:
        assert {"loc", "msg"} <= set(err)
    # 413 from both features: a text over the token cap, a draw count over it.
    _check_error(client.get("/api/draws", params={"n": 10**9}), 413)
    # 409: cancelling a run that has finished.
    storage = client.app.state.storage  # type: ignore[attr-defined]
    storage.create_run(RunRecord("r1", 0.0, 0.0, 0.0, "succeeded", {}, {}))
    assert (
        "only queued or running" in _check_error(client.post("/api/runs/r1/cancel"), 409)["detail"]
    )


def test_503_has_the_same_shape(entrodrop_home: Path) -> None:
    # The server model still loading (a loader held until the end: no real model is touched).
    release = threading.Event()

    def held(spec: str) -> Any:
        release.wait(PATIENCE_S)
        raise ModelLoadError("released")

    app = create_app(Settings(home=entrodrop_home))
    service = ModelService(app.state.settings, loader=held)
    app.state.services[app.state.services.index(app.state.model_service)] = service
    app.state.model_service = service
    try:
        with TestClient(app) as client:
            res = client.post("/api/score", json={"text": "hello"})
            _check_error(res, 503)
            assert int(res.headers["Retry-After"]) >= 1
    finally:
        release.set()


def test_quick_preset_is_one_fact_for_form_api_and_cli(client: TestClient) -> None:
    quick = PRESETS["quick"]
    plain = client.post("/api/runs/check", json={}).json()["configs"][0]
    assert plain["learning_rate"] == RunConfig().learning_rate  # no preset: plain defaults
    checked = client.post("/api/runs/check", json={"preset": "quick", "epochs": 2}).json()
    config = checked["configs"][0]
    assert all(config[k] == v for k, v in quick.items() if k != "epochs")
    assert config["epochs"] == 2  # the body's own value wins over the preset's
    bad = _check_error(client.post("/api/runs/check", json={"preset": "huge"}), 422)
    assert bad["errors"][0]["loc"] == ["preset"]
    form = client.get("/api/runs/form").json()
    assert form["preset"] == "quick"
    assert all(form["defaults"][k] == v for k, v in quick.items())
    fields = {f["name"]: f for f in form["training_fields"] + form["advanced_fields"]}
    assert fields["learning_rate"]["default"] == quick["learning_rate"]
    assert fields["learning_rate"]["help"] == RunConfig.model_fields["learning_rate"].description
    result = CliRunner().invoke(cli, ["train", "--preset", "huge"])
    assert result.exit_code == 2 and "unknown preset" in result.output


def test_runs_pages_receive_the_facts_they_show(client: TestClient) -> None:
    facts = client.get("/api/runs").json()["facts"]
    assert facts["dropping_methods"] == ["entrodrop", "random"]
    assert "queued" in facts["statuses"] and set(facts["active"]) <= set(facts["statuses"])
    for panel in facts["panels"]:
        assert all(name in facts["metric_labels"] for name in panel["names"])
