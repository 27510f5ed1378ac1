"""After training through the API: an early-stopped run's JSON twin, run:<id>:best in Inspect and
/api/score, the export download, and the estimate's "at most"."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from runs_helpers import ClientFactory, wait_ended
from waiting import PATIENCE_S

pytestmark = pytest.mark.timeout(600)
TEXT = "The for statement iterates over a sequence."


@pytest.mark.processes
def test_an_early_stopped_run_over_the_api_with_its_best_checkpoint_and_export(
    make_client: ClientFactory, tiny_model_dir: Path, small_corpus: Path, entrodrop_home: Path
) -> None:
    body = {
        "model": str(tiny_model_dir), "dataset": str(small_corpus), "method": "none",
        "max_steps": 8, "seq_len": 32, "batch_size": 4, "eval_every": 1,
        "max_train_tokens": 256, "max_eval_tokens": 256, "learning_rate": 0.03,
        "early_stopping_patience": 1,
    }  # fmt: skip
    with make_client(fake_child=False, allowed_data_dirs=[small_corpus.parent]) as client:
        check = client.post("/api/runs/check", json=body)
        assert check.status_code == 200, check.text
        assert check.json()["estimate"]["at_most"] is True
        res = client.post("/api/runs", json=body)
        assert res.status_code == 201, res.text
        run_id = res.json()["id"]
        run = wait_ended(client, run_id, PATIENCE_S * 4)
        assert run["status"] == "succeeded", run["error"]
        best = run["best_step"]
        assert run["stopped_early"] is True and run["step"] == best + 1 < 8
        assert run["stop_reason"].startswith(f"early stopping at step {best + 1}")
        assert run["best_metric"] == "eval/loss" and set(run["best_metrics"]) >= {"eval/loss"}
        assert run["best_checkpoint"] == f"checkpoint-{best}" and run["eta_at_most"] is True
        assert run["links"]["inspect_best"] == f"/?model=run:{run_id}:best"
        assert run["summary_file"]["stopped_early"] is True
        listed = client.get("/api/runs").json()["runs"][0]
        assert (listed["best_step"], listed["stopped_early"]) == (best, True)
        compared = client.get("/api/compare", params={"runs": run_id}).json()
        assert compared["table"][0]["best_step"] == best
        assert client.get(f"/runs/{run_id}").status_code == 200

        # Inspect offers the final model and the best checkpoint; both score.
        specs = [c["spec"] for c in client.get("/api/checkpoints").json()][:2]
        assert specs == [f"run:{run_id}", f"run:{run_id}:best"]
        scores = {
            spec: client.post("/api/score", json={"text": TEXT, "model": spec}).json()
            for spec in specs
        }
        assert all(s["n_tokens"] > 3 for s in scores.values())
        entropies = [[t["entropy"] for t in s["tokens"]][1:] for s in scores.values()]
        assert entropies[0] != entropies[1]  # two different steps' weights
        refused = client.post("/api/score", json={"text": TEXT, "model": f"run:{run_id}:2"})
        assert refused.status_code == 422 and "no checkpoint at step 2" in refused.json()["detail"]

        # The export: a zip streamed from the folder it leaves under <home>/exports/.
        zipped = client.get(run["links"]["export"], params={"checkpoint": "best"})
        assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
        folder = Path(unquote(zipped.headers["x-export-folder"]))
        assert folder == entrodrop_home / "exports" / f"{run_id}-best" and folder.is_dir()
        names = zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
        assert f"{folder.name}/model.safetensors" in names and f"{folder.name}/README.md" in names
        bad = client.get(run["links"]["export"], params={"checkpoint": "2"})
        assert bad.status_code == 409 and "no checkpoint at step 2" in bad.json()["detail"]
        wrong = client.get(run["links"]["export"], params={"checkpoint": "worst"})
        assert wrong.status_code == 422
        merge = client.get(run["links"]["export"], params={"merge": "true"})
        assert merge.status_code == 409 and "LoRA" in merge.json()["detail"]
        assert client.get("/api/runs/r20990101-000000-beef/export.zip").status_code == 404


def test_the_form_and_the_study_form_offer_the_after_training_fields(
    make_client: ClientFactory,
) -> None:
    from entrodrop.metrics import SELECTABLE

    with make_client() as client:
        form = client.get("/api/runs/form").json()
        study_form = client.get("/api/studies/form").json()
    fields = {f["name"]: f for f in form["advanced_fields"]}
    patience = fields["early_stopping_patience"]
    assert patience["kind"] == "int" and patience["nullable"] and patience["default"] is None
    assert fields["best_metric"]["kind"] == "select"
    assert fields["best_metric"]["options"] == list(SELECTABLE)
    assert (
        fields["save_total_limit"]["default"] == 1 and fields["save_only_model"]["kind"] == "bool"
    )
    base = {f["name"] for f in study_form["base_fields"]}
    assert {"early_stopping_patience", "best_metric"} <= base and "save_only_model" not in base
    assert "early_stop" in {v["label"] for v in study_form["variants"]}
    assert all("early_stop" in p["labels"] for p in study_form["presets"])
