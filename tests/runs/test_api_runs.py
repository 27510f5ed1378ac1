"""The runs API and pages through an in-process client: shapes, errors, uploads, the preview."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from runs_helpers import SEED_MODES, ClientFactory, wait_sync
from waiting import PATIENCE_S

from entrodrop.config import RunConfig


def wait_finished(client: TestClient, run_id: str, timeout: float = PATIENCE_S) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        res = client.get(f"/api/runs/{run_id}")
        assert res.status_code == 200
        seen.update(res.json())
        assert 0.0 <= seen["progress"] <= 1.0
        return seen["status"] not in ("queued", "running")

    wait_sync(done, timeout, f"run {run_id}")
    return seen


def test_tiny_run_over_the_api_succeeds_with_metrics_csv_and_events(
    make_client: ClientFactory, tiny_model_dir: Path
) -> None:
    body = {"model": str(tiny_model_dir), "max_steps": 4, "seq_len": 32, "batch_size": 2}
    body |= {"eval_every": 2, "max_eval_tokens": 256}
    with make_client(fake_child=False) as client:
        res = client.post("/api/runs", json=body)
        assert res.status_code == 201, res.text
        run_id = res.json()["id"]
        assert res.json()["url"] == f"/runs/{run_id}"
        run = wait_finished(client, run_id)
        assert run["status"] == "succeeded", run["error"]
        assert run["progress"] == 1.0 and run["final_eval_loss"] is not None

        rows = client.get(f"/api/runs/{run_id}/metrics").json()
        assert rows and {"step", "name", "value"} <= set(rows[0])
        assert {"train/loss", "eval/loss", "eval/loss_low_entropy", "general/loss"} <= {
            r["name"] for r in rows
        }
        only = client.get(f"/api/runs/{run_id}/metrics", params={"name": "eval/loss"}).json()
        assert {r["name"] for r in only} == {"eval/loss"} and [r["step"] for r in only] == [0, 2, 4]

        res = client.get(f"/api/runs/{run_id}/metrics.csv")
        assert res.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(res.text)))
        assert len(table) == len(rows) and set(table[0]) == {
            "attempt",
            "step",
            "name",
            "value",
            "epoch",
            "time",
        }

        events = client.get(f"/api/runs/{run_id}/events").text  # a finished run: one full pass
        assert "event: metrics" in events and "event: status" in events
        assert events.rstrip().endswith('event: end\ndata: {"status": "succeeded"}')

        listed = client.get("/api/runs").json()["runs"]
        assert [r["id"] for r in listed] == [run_id] and listed[0]["best_eval_loss"] is not None
        for page in (
            "/runs",
            f"/runs/{run_id}",
            f"/compare?runs={run_id}",
            f"/runs/new?like={run_id}",
        ):
            html = client.get(page)
            assert html.status_code == 200 and run_id in html.text, page
        assert f'href="/?model=run:{run_id}"' in client.get(f"/runs/{run_id}").text
        # The finished run's model is now a valid starting point.
        check = client.post("/api/runs/check", json={"model": f"run:{run_id}"})
        assert check.status_code == 200, check.text


def test_missing_fields_take_the_defaults_and_runs_survive_a_restart(
    make_client: ClientFactory, tiny_model_dir: Path, entrodrop_home: Path
) -> None:
    with make_client() as client:
        res = client.post("/api/runs", json={"model": str(tiny_model_dir)})
        assert res.status_code == 201
        run_id = res.json()["id"]
        config = json.loads((entrodrop_home / "runs" / run_id / "config.json").read_text())
        assert config == RunConfig(model=str(tiny_model_dir)).model_dump(mode="json")
        before = wait_finished(client, run_id)
        assert before["status"] == "succeeded"
    with make_client() as client:  # a new server on the same home
        after = client.get(f"/api/runs/{run_id}").json()
        assert after["status"] == "succeeded"
        assert after["best_eval_loss"] == before["best_eval_loss"] == 5.7
        assert len(client.get(f"/api/runs/{run_id}/metrics").json()) == 6


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"method": "dropout"}, "method"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"entrodrop": {"selection": "threshold"}}, "entrodrop.threshold"),
        ({"entrodrop": {"quantile": 1.5}}, "entrodrop.quantile"),
        ({"launcher": {"kind": "mpi"}}, "launcher.kind"),
        ({"launcher": {"kind": "accelerate", "num_processes": 0}}, "launcher.num_processes"),
        ({"compare_with": "weight_decay"}, "compare_with"),
        ({"method": "none", "compare_with": "none"}, "compare_with"),
        ({"model": "/no/such/folder"}, "model"),
        ({"model": "run:r-nope"}, "model"),
        ({"dataset": "../secrets.txt"}, "dataset"),
        ({"dataset": "/etc/passwd"}, "dataset"),
        ([1, 2], "body"),
    ],
)
def test_invalid_requests_are_422_with_a_readable_detail(
    make_client: ClientFactory, body: Any, field: str
) -> None:
    with make_client() as client:
        for url in ("/api/runs", "/api/runs/check", "/api/runs/preview"):
            res = client.post(url, json=body)
            assert res.status_code == 422, (url, res.text)
            data = res.json()
            assert isinstance(data["detail"], str) and data["detail"]
            assert field in [e["field"] for e in data["errors"]], data
        assert client.get("/api/runs").json()["runs"] == []


def test_not_json_is_422(make_client: ClientFactory) -> None:
    with make_client() as client:
        res = client.post(
            "/api/runs", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert res.status_code == 422 and isinstance(res.json()["detail"], str)


def test_unknown_runs_are_404_with_a_detail(make_client: ClientFactory) -> None:
    with make_client() as client:
        for method, url in [
            ("GET", "/api/runs/r-missing"),
            ("GET", "/api/runs/r-missing/metrics"),
            ("GET", "/api/runs/r-missing/metrics.csv"),
            ("GET", "/api/runs/r-missing/events"),
            ("POST", "/api/runs/r-missing/cancel"),
            ("POST", "/api/runs/r-missing/resume"),
            ("GET", "/api/compare?runs=r-missing"),
            ("GET", "/api/runs/bad%20id!"),
        ]:
            res = client.request(method, url)
            assert res.status_code == 404, url
            assert "r-missing" in res.json()["detail"] or "bad id" in res.json()["detail"]
        assert client.get("/runs/r-missing").status_code == 404
        assert client.get("/compare?runs=r-missing").status_code == 404
        assert client.get("/api/compare?runs=").status_code == 422


def test_matched_pair_and_compare(make_client: ClientFactory, tiny_model_dir: Path) -> None:
    with make_client() as client:
        body = {"model": str(tiny_model_dir), "seed": 7, "compare_with": "random"}
        res = client.post("/api/runs", json=body)
        assert res.status_code == 201
        ids = res.json()["ids"]
        assert len(ids) == 2 and res.json()["url"] == f"/compare?runs={ids[0]},{ids[1]}"
        for run_id in ids:
            wait_finished(client, run_id)
        data = client.get("/api/compare", params={"runs": ",".join(ids)}).json()
        assert [r["id"] for r in data["runs"]] == ids
        assert data["differences"] == [{"key": "method", "values": ["entrodrop", "random"]}]
        assert set(data["metrics"]) == set(ids) and data["table"][0]["best_eval_loss"] == 5.7
        assert client.get(f"/compare?runs={','.join(ids)}").status_code == 200
        assert all(r["group_id"] == ",".join(ids) for r in client.get("/api/runs").json()["runs"])


def test_cancel_and_restart_without_a_checkpoint(make_client: ClientFactory) -> None:
    with make_client(cancel_grace_s=2.0) as client:
        run_id = client.post("/api/runs", json={"seed": SEED_MODES["slow"]}).json()["id"]
        wait_sync(lambda: client.get(f"/api/runs/{run_id}").json()["step"] > 2, PATIENCE_S, "steps")
        # The child's own words for its stage reach the run's summary while it runs.
        assert client.get(f"/api/runs/{run_id}").json()["stage"].startswith("training step ")
        res = client.post(f"/api/runs/{run_id}/cancel")
        assert res.status_code == 200 and res.json()["cancel_requested"]
        done = wait_finished(client, run_id)
        assert done["status"] == "cancelled" and done["stage"] is None  # only while running
        assert done["checkpoint"] is None
        assert not done["can_resume"] and done["can_restart"]  # no checkpoint: no "resume"
        first = client.get(f"/api/runs/{run_id}/metrics").json()
        assert client.post(f"/api/runs/{run_id}/cancel").status_code == 409
        res = client.post(f"/api/runs/{run_id}/resume")
        assert res.status_code == 409 and "restart" in res.json()["detail"]
        res = client.post(f"/api/runs/{run_id}/restart")
        assert res.status_code == 200 and res.json()["status"] in ("queued", "running")
        assert client.post(f"/api/runs/{run_id}/restart").status_code == 409
        wait_sync(lambda: client.get(f"/api/runs/{run_id}/metrics").json(), PATIENCE_S, "new rows")
        client.post(f"/api/runs/{run_id}/cancel")
        done = wait_finished(client, run_id)
        assert done["status"] == "cancelled" and done["attempts"] == 2
        # The new attempt's curve starts again at step 1 and never holds the first one's rows.
        current = client.get(f"/api/runs/{run_id}/metrics").json()
        assert {r["attempt"] for r in current} == {2} and min(r["step"] for r in current) == 1
        earlier = client.get(f"/api/runs/{run_id}/metrics?attempt=1").json()
        assert [(r["step"], r["value"]) for r in earlier] == [
            (r["step"], r["value"]) for r in first
        ]
        every = client.get(f"/api/runs/{run_id}/metrics?attempt=all").json()
        assert len(every) == len(first) + len(current)
        assert client.get(f"/api/runs/{run_id}/metrics?attempt=x").status_code == 422


def test_resume_continues_from_the_checkpoint(make_client: ClientFactory) -> None:
    with make_client(cancel_grace_s=2.0) as client:
        run_id = client.post("/api/runs", json={"seed": SEED_MODES["ckpt"]}).json()["id"]
        wait_sync(lambda: client.get(f"/api/runs/{run_id}").json()["step"] > 5, PATIENCE_S, "steps")
        client.post(f"/api/runs/{run_id}/cancel")
        done = wait_finished(client, run_id)
        assert done["can_resume"] and not done["can_restart"]
        assert done["checkpoint"] == "checkpoint-3" and done["checkpoint_step"] == 3
        assert client.post(f"/api/runs/{run_id}/restart").status_code == 409
        res = client.post(f"/api/runs/{run_id}/resume")
        assert res.status_code == 200 and res.json()["step"] == 3
        wait_sync(
            lambda: len(client.get(f"/api/runs/{run_id}/metrics").json()) > 5, PATIENCE_S, "steps"
        )
        client.post(f"/api/runs/{run_id}/cancel")
        done = wait_finished(client, run_id)
        assert done["attempts"] == 2
        # Elapsed time counts both attempts.
        assert done["elapsed_s"] > done["finished_at"] - done["started_at"]
        rows = client.get(f"/api/runs/{run_id}/metrics").json()
        steps = [r["step"] for r in rows]
        assert steps == list(range(1, len(steps) + 1))  # one row per step, from the start
        assert {r["attempt"] for r in rows} == {2}


def test_a_queued_run_that_never_started_offers_neither(make_client: ClientFactory) -> None:
    with make_client(max_concurrent_runs=1, cancel_grace_s=2.0) as client:
        busy = client.post("/api/runs", json={"seed": SEED_MODES["slow"]}).json()["id"]
        waiting = client.post("/api/runs", json={"seed": SEED_MODES["slow"]}).json()["id"]
        assert client.delete(f"/api/runs/{waiting}").status_code == 409  # queued
        assert client.post(f"/api/runs/{waiting}/cancel").status_code == 200
        run = client.get(f"/api/runs/{waiting}").json()
        assert run["status"] == "cancelled" and run["attempts"] == 0
        assert not run["can_resume"] and not run["can_restart"] and run["can_delete"]
        for action in ("resume", "restart"):
            res = client.post(f"/api/runs/{waiting}/{action}")
            assert res.status_code == 409 and "never started" in res.json()["detail"]
        page = client.get(f"/runs/{waiting}").text
        assert "curves complete" not in page
        client.post(f"/api/runs/{busy}/cancel")
        wait_finished(client, busy)


def test_rename_tag_and_delete(make_client: ClientFactory, entrodrop_home: Path) -> None:
    with make_client() as client:
        run_id = client.post("/api/runs", json={}).json()["id"]
        assert client.delete(f"/api/runs/{run_id}").status_code in (200, 409)  # maybe running
        wait_finished(client, run_id)
        body = {"name": "baseline v2", "notes": "lr 2e-4", "tags": ["paper", "paper", "lr.sweep"]}
        res = client.patch(f"/api/runs/{run_id}", json=body)
        assert res.status_code == 200, res.text
        got = res.json()
        assert (got["name"], got["notes"], got["tags"]) == (
            "baseline v2",
            "lr 2e-4",
            ["paper", "lr.sweep"],
        )
        assert client.get("/api/runs").json()["tags"] == ["lr.sweep", "paper"]
        assert (
            client.patch(f"/api/runs/{run_id}", json={"notes": "x"}).json()["name"] == "baseline v2"
        )
        for bad in (
            {"name": "x" * 121},
            {"tags": ["has space"]},
            {"tags": ["t"] * 17},
            {"size": 1},
        ):
            res = client.patch(f"/api/runs/{run_id}", json=bad)
            assert res.status_code == 422 and res.json()["detail"], bad
        assert client.get("/api/runs").json()["runs"][0]["disk_bytes"] > 0
        run_dir = entrodrop_home / "runs" / run_id
        assert run_dir.is_dir()
        res = client.delete(f"/api/runs/{run_id}")
        assert res.status_code == 200 and res.json() == {"id": run_id, "deleted": True}
        assert not run_dir.exists()
        assert client.get(f"/api/runs/{run_id}").status_code == 404
        assert client.delete(f"/api/runs/{run_id}").status_code == 404
        assert client.get("/api/runs").json()["runs"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "evil\x00name"),
        ("name", "\x1b[31mred"),
        ("name", "abc\u202etxt.exe"),  # right-to-left override: shows as "abcexe.txt"
        ("name", "two\nlines"),
        ("name", "zero\u200bwidth"),
        ("notes", "bell\x07"),
        ("notes", "isolate \u2066x\u2069"),
    ],
)
def test_names_and_notes_refuse_control_characters(
    make_client: ClientFactory, field: str, value: str
) -> None:
    with make_client() as client:
        run_id = client.post("/api/runs", json={}).json()["id"]
        wait_finished(client, run_id)
        res = client.patch(f"/api/runs/{run_id}", json={field: value})
        assert res.status_code == 422, res.text
        assert "control character" in res.json()["detail"] and res.json()["errors"][0]["loc"] == [
            field
        ]
        assert client.get(f"/api/runs/{run_id}").json()[field] == ""
        fine = "line one\n\tline two, café 中文" if field == "notes" else "café 中文 v2"
        assert client.patch(f"/api/runs/{run_id}", json={field: fine}).json()[field] == fine


def test_study_names_refuse_control_characters(make_client: ClientFactory) -> None:
    with make_client() as client:
        body = {"name": "s\u202eevil", "variants": ["none"], "seeds": [0]}
        res = client.post("/api/studies", json=body)
        assert res.status_code == 422 and "control character" in res.json()["detail"]
        assert client.get("/api/runs").json()["runs"] == []


def test_cost_estimate_from_a_measured_step_time(make_client: ClientFactory) -> None:
    with make_client() as client:
        body = {"max_steps": 4000, "batch_size": 2, "grad_accum": 2, "seq_len": 64}
        est = client.post("/api/runs/check", json=body).json()
        assert est["estimate"]["steps"] == 4000 and est["estimate"]["tokens"] == 4000 * 2 * 2 * 64
        # Never nothing: before any run here, every part is a prior, and the parts add up.
        parts = {p["key"]: p for p in est["estimate"]["parts"]}
        assert {p["source"] for p in parts.values()} == {"prior"}
        assert list(parts) == [
            "startup",
            "reference",
            "evaluations",
            "steps",
            "checkpoints",
            "save",
        ]
        assert est["estimate"]["duration_s"] == pytest.approx(
            sum(p["seconds"] for p in parts.values())
        )
        assert parts["evaluations"]["label"] == "161 evaluations"  # step 0, then every 25 steps
        assert "prior" in est["estimate_text"] and est["total"]["runs"] == 1
        run_id = client.post("/api/runs", json=body).json()["id"]
        assert wait_finished(client, run_id)["status"] == "succeeded"  # the fake: 0.25 s/step
        est = client.post("/api/runs/check", json=body).json()["estimate"]
        steps = next(p for p in est["parts"] if p["key"] == "steps")
        assert est["step_time_s"] == 0.25 and steps == {
            **steps,
            "seconds": 1000.0,
            "source": "measured",
        }
        assert est["duration_s"] > 1000.0 and est["warn"]
        other = client.post("/api/runs/check", json={**body, "seq_len": 32}).json()["estimate"]
        assert next(p for p in other["parts"] if p["key"] == "steps")["source"] == "prior"
        # Set by epochs: steps from the data's size until a run has counted this data's blocks.
        by_epochs = {"epochs": 2.0, "batch_size": 2, "seq_len": 64}
        est = client.post("/api/runs/check", json=by_epochs).json()["estimate"]
        assert est["steps_source"] == "data size" and est["steps"] > 100
        run_id = client.post("/api/runs", json=by_epochs).json()["id"]
        assert wait_finished(client, run_id)["status"] == "succeeded"  # the fake: 3 steps
        est = client.post("/api/runs/check", json=by_epochs).json()["estimate"]
        assert est["steps"] == 3 and est["steps_source"] == "measured"
        assert next(p for p in est["parts"] if p["key"] == "steps")["seconds"] == 0.75
        twice = client.post("/api/runs/check", json={**by_epochs, "epochs": 4.0}).json()
        assert twice["estimate"]["steps"] == 6


def test_uploads_and_dataset_paths(make_client: ClientFactory, tmp_path: Path) -> None:
    allowed = tmp_path / "data"
    allowed.mkdir()
    (allowed / "notes.txt").write_text("first note\n\n\nsecond note\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    os.symlink(outside, allowed / "link.txt")
    with make_client(allowed_data_dirs=[allowed], max_upload_bytes=200) as client:
        res = client.post(
            "/api/uploads", files={"file": ("my notes.jsonl", b'{"text": "a b c"}\n')}
        )
        assert res.status_code == 201, res.text
        uploaded = res.json()
        assert uploaded["n_texts"] == 1 and Path(uploaded["dataset"]).is_file()
        assert Path(uploaded["dataset"]).parent == client.app.state.settings.home / "uploads"  # type: ignore[attr-defined]
        assert (
            client.post("/api/runs/check", json={"dataset": uploaded["dataset"]}).status_code == 200
        )
        too_big = client.post("/api/uploads", files={"file": ("big.txt", b"x" * 300)})
        assert too_big.status_code == 413 and "200 bytes" in too_big.json()["detail"]
        wrong = client.post("/api/uploads", files={"file": ("model.bin", b"\x00\x01")})
        assert wrong.status_code == 422 and "unsupported" in wrong.json()["detail"]

        ok = client.post("/api/runs/check", json={"dataset": "notes.txt"})
        assert ok.status_code == 200 and ok.json()["configs"][0]["dataset"] == str(
            allowed / "notes.txt"
        )
        for bad in ("link.txt", str(outside), "../outside.txt", "sub/../notes.txt", "missing.txt"):
            res = client.post("/api/runs/check", json={"dataset": bad})
            assert res.status_code == 422 and res.json()["errors"][0]["field"] == "dataset", bad
        # The held-out and general-text files go through the same checks as the dataset.
        named = {"heldout_dataset": "notes.txt", "general_dataset": uploaded["dataset"]}
        ok = client.post("/api/runs/check", json=named)
        assert ok.status_code == 200, ok.text
        assert ok.json()["configs"][0]["heldout_dataset"] == str(allowed / "notes.txt")
        for field in named:
            res = client.post("/api/runs/check", json={field: str(outside)})
            assert res.status_code == 422 and res.json()["errors"][0]["field"] == field


def test_check_shows_the_config_and_the_commands(make_client: ClientFactory) -> None:
    with make_client() as client:
        res = client.post(
            "/api/runs/check", json={"launcher": {"kind": "accelerate", "num_processes": 2}}
        )
        data = res.json()
        assert json.loads(data["config_json"]) == RunConfig().model_dump(mode="json")
        assert any("accelerate launch --multi_gpu --num_processes 2" in c for c in data["commands"])
        single = client.post("/api/runs/check", json={}).json()
        assert single["commands"] == ["entrodrop train --config run.json"]
        form = client.get("/api/runs/form").json()
        assert {f["name"] for f in form["entrodrop_fields"]} == {
            f"entrodrop.{k}" for k in RunConfig().entrodrop.model_dump()
        }
        page = client.get("/runs/new").text
        assert 'data-field="entrodrop.steepness"' in page and 'id="launch"' in page


def test_preview_of_the_first_batch(make_client: ClientFactory, tiny_model_dir: Path) -> None:
    with make_client() as client:
        body = {"model": str(tiny_model_dir), "seq_len": 32, "batch_size": 2}
        res = client.post("/api/runs/preview", json=body | {"entrodrop": {"rate_max": 1.0}})
        assert res.status_code == 200, res.text
        data = res.json()
        assert [p["progress"] for p in data["points"]] == [0.0, 0.5, 1.0]
        rates = [p["rate"] for p in data["points"]]
        assert rates == sorted(rates) and rates[-1] > 0.9
        assert len(data["rows"]) == 2 and len(data["rows"][0]) == 32
        tokens = [t for row in data["rows"] for t in row]
        assert all(t["dropped"] == sorted(t["dropped"]) for t in tokens)  # drops only grow with s
        assert sum(t["dropped"][2] for t in tokens) > 0
        assert not any(row[0]["dropped"][2] for row in data["rows"])  # never the first token
        none = client.post("/api/runs/preview", json=body | {"method": "none"}).json()
        assert not none["drops_apply"] and all(p["n_dropped"] == 0 for p in none["points"])


def test_openapi_documents_the_runs_api(make_client: ClientFactory) -> None:
    with make_client() as client:
        spec = client.get("/openapi.json").json()
        bodies = {
            url: spec["paths"][url]["post"]["requestBody"]["content"]["application/json"]["schema"]
            for url in ("/api/runs", "/api/runs/check", "/api/runs/preview")
        }
        assert set(map(json.dumps, bodies.values())) == {
            json.dumps({"$ref": "#/components/schemas/RunCreate"})
        }  # one body model, the one FastAPI validates
        schema = spec["components"]["schemas"]["RunCreate"]
        assert {"model", "entrodrop", "launcher", "compare_with", "preset"} <= set(
            schema["properties"]
        )
        assert schema["additionalProperties"] is False
        for path in ("/api/runs/{run_id}/events", "/api/runs/{run_id}/metrics.csv", "/api/compare"):
            assert path in spec["paths"]


def test_favicon_and_help_a_pip_user_can_follow(make_client: ClientFactory) -> None:
    """The icon is served (no 404 in the log); no help text points to the repository's files."""
    with make_client() as client:
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
        assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
        assert '<link rel="icon" href="/favicon.ico"' in client.get("/runs").text
        texts = [
            client.get("/api/runs/form").text,
            client.get("/api/studies/form").text,
            client.get("/openapi.json").text,
        ]
        for text in texts:
            for repo_only in ("bench/", "DESIGN", "\\u00a7", "§"):
                assert repo_only not in text, repo_only
