"""The studies API and pages through an in-process client: a real study on the tiny model,
validation, cancel, delete and a restart."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from runs_helpers import SEED_MODES, ClientFactory, wait_sync

pytestmark = pytest.mark.timeout(300)
TINY = {"max_steps": 2, "seq_len": 32, "batch_size": 2, "eval_every": 2, "max_eval_tokens": 256}


def wait_study(client: TestClient, study_id: str, timeout: float = 240) -> dict[str, Any]:
    """Poll the study until no run is queued or running; checks the queue's one-at-a-time rule."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        res = client.get(f"/api/studies/{study_id}")
        assert res.status_code == 200, res.text
        seen.update(res.json())
        assert sum(r["status"] == "running" for r in seen["runs"]) <= 1  # one at a time
        return seen["status"] not in seen["facts"]["active"]

    wait_sync(done, timeout, f"study {study_id}")
    return seen


def finite(stat: dict[str, Any]) -> bool:
    return all(isinstance(stat[k], float) and math.isfinite(stat[k]) for k in ("mean", "ci95"))


@pytest.mark.processes
def test_study_of_two_variants_and_two_seeds_on_the_tiny_model(
    make_client: ClientFactory, tiny_model_dir: Path
) -> None:
    body = {
        "name": "tiny none vs random",
        "base": {"model": str(tiny_model_dir), **TINY},
        "variants": ["none", "random"],
        "seeds": [0, 1],
    }
    with make_client(fake_child=False) as client:
        res = client.post("/api/studies", json=body)
        assert res.status_code == 201, res.text
        created = res.json()
        study_id = created["id"]
        assert created["url"] == f"/studies/{study_id}"
        assert [(r["variant"], r["seed"]) for r in created["runs"]] == [
            ("none", 0), ("random-input", 0), ("none", 1), ("random-input", 1),
        ]  # fmt: skip
        # The runs are ordinary runs of the one queue, with the study's checkpoint choice.
        run = client.get(f"/api/runs/{created['runs'][1]['id']}").json()
        assert run["config"]["method"] == "random" and run["config"]["seed"] == 0
        assert run["config"]["save_checkpoints"] is False and run["config"]["save_model"] is False

        study = wait_study(client, study_id)
        assert study["status"] == "succeeded", study["runs"]
        assert [r["variant"] for r in study["summary"]] == ["none", "random-input"]
        assert [o["name"] for o in study["facts"]["outcomes"]][0] == "final_heldout"
        for row in study["summary"]:
            assert row["n"] == 2
            for name in ("final_heldout", "best_heldout", "final_general"):
                assert finite(row[name]), (row["variant"], name, row[name])
        (paired,) = study["paired"]
        assert (paired["variant"], paired["vs"], paired["vs_label"]) == (
            "random-input",
            "none",
            "none",
        )
        assert paired["seeds"] == [0, 1] and finite(paired["final_heldout_diff"])
        assert study["readings"] == [paired["reading"]] and "n=2" in paired["reading"]
        curve = study["curves"]["none"]["eval/loss"]
        assert curve["step"] == [0, 2] and curve["n"] == [2, 2]
        assert all(
            lo <= m <= hi for lo, m, hi in zip(curve["lo"], curve["mean"], curve["hi"], strict=True)
        )

        res = client.get(f"/api/studies/{study_id}.csv")
        assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(res.text)))
        assert {(r["table"], r["variant"]) for r in rows} >= {
            ("summary", "none"), ("summary", "random-input"), ("paired", "random-input"),
        }  # fmt: skip

        listed = client.get("/api/studies").json()["studies"]
        assert [(s["id"], s["status"], s["n_runs"]) for s in listed] == [(study_id, "succeeded", 4)]
        page = client.get(f"/studies/{study_id}")
        assert page.status_code == 200 and 'id="study-data"' in page.text


def test_bad_studies_are_refused_with_the_house_error_shape(make_client: ClientFactory) -> None:
    cases: list[tuple[Any, str]] = [
        ({"name": "x", "variants": ["nope"]}, "unknown method 'nope'"),
        ({"variants": ["none"]}, "'name' is required"),
        ({"name": "x", "variants": [{"method": "none", "max_steps": 3}]}, "set it in 'base'"),
        ({"name": "x", "variants": ["none"], "seeds": [1, 1]}, "seeds must be unique"),
        (
            {"name": "x", "variants": ["none"], "base": {"model": "/no/such/model"}},
            "no model folder",
        ),
        ({"name": "x", "variants": ["none", "random"], "seeds": [0, 1]}, "at most 3"),
        ([1, 2], "expected a JSON object"),
    ]
    with make_client(max_study_runs=3) as client:
        for body, words in cases:
            res = client.post("/api/studies", json=body)
            assert res.status_code == 422, (body, res.text)
            assert words in res.json()["detail"], (body, res.json())
        res = client.post(
            "/api/studies", json={"name": "x", "variants": ["none"], "base": {"model": "/no"}}
        )
        assert any(e["loc"][:2] == ["base", "model"] for e in res.json()["errors"])
        assert client.get("/api/runs").json()["runs"] == []  # nothing was queued
        assert client.get("/api/studies").json()["studies"] == []
        for path in ("/api/studies/s-nope", "/api/studies/a..b", "/api/studies/s-nope.csv"):
            res = client.get(path)
            assert res.status_code == 404 and "no study" in res.json()["detail"], path
        assert client.get("/api/studies/..%2F..%2Fetc").status_code == 404
        assert client.get("/studies/s-nope").status_code == 404


def test_cancel_and_delete_refused_while_active(make_client: ClientFactory) -> None:
    body = {"name": "slow", "variants": ["none", "label_smoothing"], "seeds": [SEED_MODES["slow"]]}
    with make_client() as client:
        created = client.post("/api/studies", json=body).json()
        study_id, (first, second) = created["id"], created["runs"]
        wait_sync(
            lambda: client.get(f"/api/runs/{first['id']}").json()["status"] == "running",
            60,
            "the first run to start",
        )
        study = client.get(f"/api/studies/{study_id}").json()
        assert study["status"] == "running"
        assert [r["status"] for r in study["runs"]] == ["running", "queued"]  # one at a time
        res = client.delete(f"/api/studies/{study_id}")
        assert res.status_code == 409 and "cancel it first" in res.json()["detail"]

        res = client.post(f"/api/studies/{study_id}/cancel")
        assert res.status_code == 200, res.text
        study = wait_study(client, study_id, 60)
        assert study["status"] == "cancelled"
        assert [r["status"] for r in study["runs"]] == ["cancelled", "cancelled"]
        res = client.post(f"/api/studies/{study_id}/cancel")
        assert res.status_code == 409 and "no queued or running" in res.json()["detail"]

        res = client.delete(f"/api/studies/{study_id}")
        assert res.status_code == 200 and res.json() == {"id": study_id, "deleted_runs": []}
        assert client.get(f"/api/studies/{study_id}").status_code == 404
        assert client.get(f"/api/runs/{second['id']}").status_code == 200  # its runs stay


def test_a_study_survives_a_restart_and_delete_with_runs(make_client: ClientFactory) -> None:
    body = {"name": "restart", "variants": ["none", "weight_decay"], "seeds": [0, 1]}
    with make_client() as client:
        created = client.post("/api/studies", json=body).json()
        study = wait_study(client, created["id"], 60)
        assert study["status"] == "succeeded"
        for run in created["runs"]:  # named after the study, and linked to it, in /runs
            got = client.get(f"/api/runs/{run['id']}").json()
            assert got["name"] == f"restart · {run['variant']} · seed {run['seed']}"
            assert got["study"]["id"] == created["id"] and got["links"]["study"] == created["url"]
    with make_client() as client:  # a new server on the same home
        (listed,) = client.get("/api/studies").json()["studies"]
        assert (listed["id"], listed["status"], listed["n_runs"]) == (created["id"], "succeeded", 4)
        again = client.get(f"/api/studies/{created['id']}").json()
        assert again["summary"] == study["summary"] and again["paired"] == study["paired"]
        res = client.delete(f"/api/studies/{created['id']}", params={"runs": "true"})
        assert res.status_code == 200
        assert res.json()["deleted_runs"] == [r["id"] for r in created["runs"]]
        for run in created["runs"]:
            assert client.get(f"/api/runs/{run['id']}").status_code == 404


def test_pages_and_form(make_client: ClientFactory) -> None:
    with make_client() as client:
        form = client.get("/api/studies/form").json()
        labels = {v["label"] for v in form["variants"]}
        assert {"none", "entrodrop-reference-input", "random-input"} <= labels
        assert all(set(p["labels"]) <= labels for p in form["presets"])
        assert form["max_runs"] == 60 and form["seeds"] == [0, 1, 2]
        for path in ("/studies", "/studies/new"):
            res = client.get(path)
            assert res.status_code == 200 and 'href="/studies"' in res.text, path


def test_a_cli_study_shows_each_runs_own_progress_and_final_loss(
    make_client: ClientFactory, entrodrop_home: Path
) -> None:
    """A study `entrodrop study` runs in the same home: the server has no row for its runs, so
    their step, progress, final loss and curves come from the run folders themselves."""
    from entrodrop.runfolder import RunFolder
    from entrodrop.studies.config import StudyConfig
    from entrodrop.studies.local import create_study

    config = StudyConfig.model_validate({"name": "cli", "variants": ["none"], "seeds": [0, 1]})
    folder = create_study(config)
    record = folder.read()
    done, running = (RunFolder(Path(record["runs_dir"]) / r["id"]) for r in record["runs"])
    done.write_status("succeeded", step=6, total_steps=6, progress=1.0)
    done.write_summary({"status": "succeeded", "final_eval_loss": 3.25})
    done.append_metrics([{"step": s, "name": "eval/loss", "value": 3.5 - s / 8} for s in (0, 2)])
    running.write_status("running", step=2, total_steps=6, progress=2 / 6)
    running.append_metrics([{"step": 0, "name": "eval/loss", "value": 3.5}])
    folder.update_run(record["runs"][0]["id"], status="succeeded")
    folder.update_run(record["runs"][1]["id"], status="running")
    with make_client() as client, folder.running_here():  # as `entrodrop study` holds it
        study = client.get(f"/api/studies/{folder.id}").json()
        refused = client.post(f"/api/studies/{folder.id}/cancel")
        undeletable = client.delete(f"/api/studies/{folder.id}")
    first, second = study["runs"]
    assert study["status"] == "running" and study["resume"] is None
    assert (first["status"], first["step"], first["total_steps"]) == ("succeeded", 6, 6)
    assert first["progress"] == 1.0 and first["final_eval_loss"] == 3.25
    assert (second["status"], second["step"], second["total_steps"]) == ("running", 2, 6)
    assert second["progress"] == pytest.approx(1 / 3) and second["final_eval_loss"] is None
    curve = study["curves"]["none"]["eval/loss"]
    assert curve["step"] == [0, 2] and curve["n"] == [2, 1]  # the running run's point counts
    # the server cannot stop a CLI study's runs, and says where to stop them
    assert refused.status_code == 409 and "entrodrop study" in refused.json()["detail"]
    assert undeletable.status_code == 409 and "where it runs" in undeletable.json()["detail"]


def test_a_cli_study_whose_process_died_is_interrupted_and_says_how_to_resume(
    make_client: ClientFactory, entrodrop_home: Path
) -> None:
    """`entrodrop study` killed mid-run leaves study.json saying `running`; no process holds the
    study's lock, so the server shows the run and the study `interrupted`, with the command that
    continues it, refuses to cancel it and lets it be deleted (its queued run is not busy)."""
    from entrodrop.studies.config import StudyConfig
    from entrodrop.studies.local import create_study

    config = StudyConfig.model_validate({"name": "cut", "variants": ["none"], "seeds": [0, 1]})
    folder = create_study(config)
    runs_dir = folder.runs_dir()
    first, second = folder.read()["runs"]
    folder.update_run(first["id"], status="running")
    with make_client() as client:
        study = client.get(f"/api/studies/{folder.id}").json()
        listed = client.get("/api/studies").json()["studies"]
        page = client.get(f"/studies/{folder.id}")
        refused = client.post(f"/api/studies/{folder.id}/cancel")
        deleted = client.delete(f"/api/studies/{folder.id}")
    assert [r["status"] for r in study["runs"]] == ["interrupted", "queued"]
    assert study["status"] == "interrupted" and listed[0]["status"] == "interrupted"
    assert "interrupted" in study["facts"]["statuses"]
    assert study["resume"] == f"entrodrop study --resume {folder.path}"
    assert page.status_code == 200 and 'id="study-resume"' in page.text
    assert refused.status_code == 409 and "--resume" in refused.json()["detail"]
    assert deleted.status_code == 200 and not folder.path.exists()
    # the run folders are the user's, kept (as for any CLI study)
    assert (runs_dir / first["id"]).is_dir() and (runs_dir / second["id"]).is_dir()
