"""The token endpoints through an in-process client: a real tiny run's record (JSON, ?step=, CSV,
the CLI's identical JSON, its checkpoints in Inspect), compares of runs and of a study, errors."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from records import make_probe, make_record
from runs_helpers import ClientFactory, wait_ended
from typer.testing import CliRunner

from entrodrop.cli import app as cli
from entrodrop.runfolder import RunFolder

pytestmark = pytest.mark.timeout(300)
TINY = {
    "max_steps": 4,
    "seq_len": 32,
    "batch_size": 2,
    "eval_every": 2,
    "max_eval_tokens": 256,
    "save_total_limit": 2,
}  # both checkpoints kept: Inspect lists each


def eval_curve(client: TestClient, run_id: str) -> dict[int, float]:
    rows = client.get(f"/api/runs/{run_id}/metrics", params={"name": "eval/loss"}).json()
    return {r["step"]: r["value"] for r in rows}


def check_aligned(view: dict[str, Any]) -> None:
    n = view["n_tokens"]
    for key in ("tokens", "ids", "source", "block", "position", "low_entropy", "start_entropy"):
        assert len(view[key]) == n, key
    for key in ("class", "best_loss", "best_step"):
        assert len(view["cartography"][key]) == n, key
    assert len(view["loss"]) == len(view["entropy"]) == len(view["steps"]) == len(view["eval_loss"])
    assert all(len(row) == n for row in view["loss"] + view["entropy"])


def test_a_real_runs_tokens_json_csv_cli_and_checkpoints(
    make_client: ClientFactory, tiny_model_dir: Path, entrodrop_home: Path
) -> None:
    with make_client(fake_child=False) as client:
        body = {"model": str(tiny_model_dir), "record_ranks": True, **TINY}
        res = client.post("/api/runs", json=body)
        run_id = res.json()["id"]
        assert wait_ended(client, run_id)["status"] == "succeeded"
        detail = client.get(f"/api/runs/{run_id}").json()
        assert detail["links"]["tokens"] == f"/api/runs/{run_id}/tokens"
        assert detail["config"]["record_tokens"] is True

        view = client.get(f"/api/runs/{run_id}/tokens").json()
        check_aligned(view)
        curve = eval_curve(client, run_id)
        assert view["steps"] == view["all_steps"] == [0, 2, 4] == sorted(curve)
        for row, step in zip(view["loss"], view["steps"], strict=True):
            assert np.mean(row) == pytest.approx(curve[step], abs=1e-4)
        assert view["eval_loss"] == pytest.approx([curve[s] for s in view["steps"]], abs=1e-4)
        assert view["covers_eval"] and view["rank"] is None and view["drops"] is None
        counts = view["cartography"]["counts"]
        assert sum(c["all"] for c in counts.values()) == view["n_tokens"]
        assert [m["id"] for m in view["colour_modes"]][:2] == ["loss", "entropy"]

        at = client.get(f"/api/runs/{run_id}/tokens", params={"step": 2, "rank": True}).json()
        assert at["steps"] == [2] and at["all_steps"] == [0, 2, 4] and at["step"] == 2
        assert at["loss"] == [view["loss"][1]] and min(at["rank"][0]) >= 1
        bad = client.get(f"/api/runs/{run_id}/tokens", params={"step": 3})
        assert bad.status_code == 422 and "steps: 0, 2, 4" in bad.json()["detail"]

        res = client.get(f"/api/runs/{run_id}/tokens", params={"format": "csv"})
        assert res.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(res.text)))
        assert len(table) == view["n_tokens"]
        assert {"token", "class", "loss_0", "loss_4", "entropy_2", "rank_4"} <= set(table[0])
        assert float(table[0]["loss_4"]) == view["loss"][2][0]

        # The CLI prints the same object for the same folder.
        out = CliRunner().invoke(cli, ["tokens", str(entrodrop_home / "runs" / run_id), "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output) == view
        text = CliRunner().invoke(cli, ["tokens", str(entrodrop_home / "runs" / run_id)])
        assert "learned then forgotten" in text.output and "steps 0..4" in text.output

        # Inspect lists each checkpoint by step, and scores with it.
        listed = client.get("/api/checkpoints").json()
        steps = [c["spec"] for c in listed if c["which"] == "step"]
        assert listed[0]["spec"] == f"run:{run_id}" and listed[1]["spec"] == f"run:{run_id}:best"
        assert steps == [f"run:{run_id}:4", f"run:{run_id}:2"]
        specs = [c["spec"] for c in listed]
        # The page's pickers group them by run: the final model, the best, then each step.
        html = client.get("/").text
        group = html.split(f'data-run-id="{run_id}">', 1)[1].split("</optgroup>", 1)[0]
        options = re.findall(r'<option value="([^"]+)">([^<]+)</option>', group)
        assert [o for o, _ in options] == specs
        texts = [t for _, t in options]
        assert texts[0] == "final model" and texts[1].startswith("best (step ")
        assert texts[2:] == ["step 4", "step 2"]
        body = {"text": "def f(x): return x", "model": f"run:{run_id}:2"}
        scored = client.post("/api/score", json=body)
        assert scored.status_code == 200, scored.text
        assert scored.json()["model"] == f"run:{run_id}:2"
        missing = client.post("/api/score", json={**body, "model": f"run:{run_id}:3"})
        assert missing.status_code == 422 and "kept: 2, 4" in missing.json()["detail"]


def fake_runs(client: TestClient, n: int) -> list[str]:
    """n quick runs of the test-double child, finished."""
    ids = [client.post("/api/runs", json={"seed": i}).json()["id"] for i in range(n)]
    for run_id in ids:
        assert wait_ended(client, run_id)["status"] == "succeeded"
    return ids


def test_runs_without_a_record_and_unknown_runs(make_client: ClientFactory) -> None:
    with make_client() as client:
        (run_id,) = fake_runs(client, 1)
        res = client.get(f"/api/runs/{run_id}/tokens")
        assert res.status_code == 404 and "has no token record yet" in res.json()["detail"]
        assert str(client.app.state.settings.home) not in res.json()["detail"]  # type: ignore[attr-defined]
        assert client.get("/api/runs/r-missing/tokens").status_code == 404
        assert client.get("/api/runs/..%2Fx/tokens").status_code == 404
        res = client.get(f"/api/runs/{run_id}/tokens", params={"format": "xml"})
        assert res.status_code == 422


def test_compare_two_runs_token_by_token(make_client: ClientFactory, entrodrop_home: Path) -> None:
    with make_client() as client:
        a, b, c = fake_runs(client, 3)
        folder = lambda run_id: RunFolder(entrodrop_home / "runs" / run_id)  # noqa: E731
        folder(a).write_tokens(make_record([[4.0, 4.0, 4.0], [2.0, 3.0, 1.0]]))
        folder(b).write_tokens(make_record([[4.0, 4.0, 4.0], [1.0, 3.5, 1.0]]))
        folder(c).write_tokens(make_record([[4.0, 4.0]], probe=make_probe(2)))
        res = client.get("/api/compare/tokens", params={"runs": f"{a},{b}"})
        assert res.status_code == 200, res.text
        out = res.json()
        assert out["runs"] == [a, b] and out["diff"] == [-1.0, 0.5, 0.0]
        assert out["order"] == [0, 2, 1] and out["tokens"] == ["t0", "t1", "t2"]
        assert out["summary"]["n"] == 3 and out["common_steps"] == [0, 10]
        at = client.get("/api/compare/tokens", params={"runs": f"{a},{b}", "step": 0}).json()
        assert at["diff"] == [0.0, 0.0, 0.0] and at["steps"] == [0, 0]
        res = client.get("/api/compare/tokens", params={"runs": f"{a},{c}"})
        assert res.status_code == 422 and "follow different tokens" in res.json()["detail"]
        for runs in (a, f"{a},{b},{c}"):
            res = client.get("/api/compare/tokens", params={"runs": runs})
            assert res.status_code == 422 and "exactly two" in res.json()["detail"]
        assert client.get("/api/compare/tokens", params={"runs": f"{a},r-none"}).status_code == 404


def test_a_studys_variants_token_by_token_over_seeds(
    make_client: ClientFactory, entrodrop_home: Path
) -> None:
    body = {"name": "s", "base": {}, "variants": ["none", "random"], "seeds": [0, 1, 2]}
    with make_client() as client:
        created = client.post("/api/studies", json=body).json()
        runs = {(r["variant"], r["seed"]): r["id"] for r in created["runs"]}
        for run_id in runs.values():
            wait_ended(client, run_id)
        b = next(v for v, _ in runs if v != "none")
        losses = {("none", 0): 3.0, (b, 0): 2.0, ("none", 1): 3.0, (b, 1): 2.5}
        for key, loss in losses.items():
            record = make_record([[4.0, 4.0], [loss, 3.0]])
            RunFolder(entrodrop_home / "runs" / runs[key]).write_tokens(record)
        res = client.get(f"/api/studies/{created['id']}/tokens")
        assert res.status_code == 200, res.text
        out = res.json()
        assert out["variants"] == ["none", b] and out["seeds"] == [0, 1]
        assert out["mean_diff"] == [-0.75, 0.0] and out["consistent"] == [True, False]
        assert out["common_steps"] == [0, 10]
        assert [s["seed"] for s in out["skipped"]] == [2]  # seed 2 has no records
        assert "has no token record yet" in out["skipped"][0]["reason"]
        res = client.get(f"/api/studies/{created['id']}/tokens", params={"a": "bogus"})
        assert res.status_code == 422 and "no variant 'bogus'" in res.json()["detail"]
        same = client.get(f"/api/studies/{created['id']}/tokens", params={"a": b, "b": b})
        assert same.status_code == 422
        assert client.get("/api/studies/nope/tokens").status_code == 404


def test_the_token_operations_are_documented_with_their_models(make_client: ClientFactory) -> None:
    with make_client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    for path, model in (
        ("/api/runs/{run_id}/tokens", "RunTokens"),
        ("/api/compare/tokens", "TokensCompare"),
        ("/api/studies/{study_id}/tokens", "StudyTokensCompare"),
    ):
        content = paths[path]["get"]["responses"]["200"]["content"]
        assert content["application/json"]["schema"]["$ref"].endswith(model), path
    assert "text/csv" in paths["/api/runs/{run_id}/tokens"]["get"]["responses"]["200"]["content"]


@pytest.mark.slow
def test_a_default_model_runs_token_rows_average_to_its_eval_loss(
    make_client: ClientFactory,
) -> None:
    """The real default model, a few steps and two evaluations: the aligned arrays the API
    returns average, row by row, to the run's eval/loss."""
    body = {"model": "default", "max_steps": 2, "eval_every": 2, "seq_len": 64, "batch_size": 2}
    body |= {"max_train_tokens": 1024, "max_eval_tokens": 512}
    with make_client(fake_child=False) as client:
        run_id = client.post("/api/runs", json=body).json()["id"]
        run = wait_ended(client, run_id)
        assert run["status"] == "succeeded", run["error"]
        view = client.get(f"/api/runs/{run_id}/tokens").json()
        curve = eval_curve(client, run_id)
    check_aligned(view)
    assert view["steps"] == sorted(curve) == [0, 2]
    assert view["n_tokens"] == 8 * 63  # 512 held-out tokens in blocks of 64, all but the firsts
    for row, step in zip(view["loss"], view["steps"], strict=True):
        assert np.mean(row) == pytest.approx(curve[step], abs=1e-4)
    assert view["tokens"][:3] and all(isinstance(t, str) for t in view["tokens"])
