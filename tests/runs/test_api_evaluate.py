"""Benchmarks through the dashboard: eval_tasks in a run's config, and the Evaluate action that
benchmarks a finished run through the one queue (it stays succeeded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runs_helpers import ClientFactory, wait_ended
from waiting import PATIENCE_S

from entrodrop.metrics import benchmark_name

pytestmark = pytest.mark.timeout(900)


@pytest.mark.processes
def test_a_run_with_benchmarks_and_then_the_evaluate_action(
    make_client: ClientFactory, tiny_model_dir: Path, small_corpus: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    body = {
        "model": str(tiny_model_dir), "dataset": str(small_corpus), "method": "none",
        "max_steps": 2, "seq_len": 32, "batch_size": 4, "eval_every": 2,
        "max_train_tokens": 256, "max_eval_tokens": 128,
        "eval_tasks": ["python_docs_mc"], "eval_limit": 3,
    }  # fmt: skip
    with make_client(fake_child=False, allowed_data_dirs=[small_corpus.parent]) as client:
        bad = client.post("/api/runs/check", json={**body, "eval_tasks": ["pica"]})
        assert bad.status_code == 422 and "did you mean" in bad.text
        code = client.post("/api/runs/check", json={**body, "eval_tasks": ["humaneval"]})
        assert code.status_code == 422 and "--allow-code-execution" in code.text
        run_id = client.post("/api/runs", json=body).json()["id"]
        run = wait_ended(client, run_id, PATIENCE_S * 4)
        assert run["status"] == "succeeded", run["error"]
        bench = run["summary_file"]["benchmarks"]["final"]["results"]["python_docs_mc"]
        assert bench["n"] == 3 and 0 <= bench["acc"] <= 1
        name = benchmark_name("python_docs_mc", "acc")
        rows = client.get(f"/api/runs/{run_id}/metrics", params={"name": name}).json()
        assert [r["value"] for r in rows] == [bench["acc"]]

        # The Evaluate action: queued through the one queue, then succeeded again.
        res = client.post(f"/api/runs/{run_id}/evaluate", json={"tasks": ["python_reference_ppl"],
                                                                "limit": 2})  # fmt: skip
        assert res.status_code == 200, res.text
        assert res.json()["status"] in ("queued", "running")
        again = wait_ended(client, run_id, PATIENCE_S * 4)
        assert again["status"] == "succeeded" and again["error"] is None, again["error"]
        results = again["summary_file"]["benchmarks"]["final"]["results"]
        assert (
            set(results) == {"python_reference_ppl"} and results["python_reference_ppl"]["n"] == 2
        )
        assert again["steps" if "steps" in again else "step"] == run["step"]  # training untouched
        refused = client.post(f"/api/runs/{run_id}/evaluate", json={"tasks": ["no_such_task_x"]})
        assert refused.status_code == 422
