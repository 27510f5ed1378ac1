"""Studies after training: the early_stop variant judged by its best checkpoint, the comparisons
and verdict against it, a study extended with new variants, and the self-contained report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from runs_helpers import ClientFactory
from typer.testing import CliRunner

from entrodrop.cli import app
from entrodrop.runfolder import RunFolder
from entrodrop.studies.config import EARLY_STOP_PATIENCE, StudyConfig
from entrodrop.studies.folder import StudyFolder
from entrodrop.studies.local import create_study, extend_study, refresh_results
from entrodrop.studies.outcomes import judged_outcomes
from entrodrop.studies.reading import verdict
from entrodrop.studies.report import report_html
from entrodrop.studies.view import folder_study_view

HELDOUT = {  # eval/loss per step of each variant (seed 1 adds 0.05 everywhere)
    "none": [3.5, 3.0, 2.9, 3.2, 3.6],
    "early_stop": [3.5, 3.0, 2.9, 3.1, 3.3],  # stopped two evaluations after its best (step 2)
    "random-input": [3.5, 3.1, 3.0, 3.05, 3.1],
}


def rows_for(values: list[float], offset: float) -> list[dict[str, Any]]:
    names = ("eval/loss", "eval/loss_high_entropy", "eval/loss_low_entropy", "general/loss")
    return [
        {"step": step, "name": name, "value": v + offset + (0.5 if "high" in name else 0.0)}
        for step, v in enumerate(values)
        for name in names
    ]


def finished_study(name: str = "after") -> StudyFolder:
    """A CLI study of none, early_stop and random over two seeds, its runs done (no training)."""
    config = StudyConfig.model_validate(
        {"name": name, "variants": ["none", "early_stop", "random"], "seeds": [0, 1]}
    )
    folder = create_study(config)
    record = folder.read()
    for run in record["runs"]:
        run_folder = RunFolder(Path(record["runs_dir"]) / run["id"])
        run_folder.append_metrics(rows_for(HELDOUT[run["variant"]], 0.05 * run["seed"]))
        stopped = run["variant"] == "early_stop"
        run_folder.write_summary(
            {
                "status": "succeeded",
                "final_eval_loss": 3.0,
                "best_step": 2,
                "stopped_early": stopped,
            }
        )
        run_folder.write_status("succeeded", step=4, total_steps=6 if stopped else 4, progress=1.0)
        folder.update_run(run["id"], status="succeeded")
    refresh_results(folder)
    return folder


def test_early_stop_is_plain_fine_tuning_judged_by_its_best_checkpoint() -> None:
    config = StudyConfig.model_validate({"name": "x", "variants": ["none", "early_stop", "random"]})
    (_, none), (label, early), _ = config.variant_configs()
    assert label == "early_stop" and early.method == "none"
    assert (
        early.early_stopping_patience == EARLY_STOP_PATIENCE
        and none.early_stopping_patience is None
    )
    assert [(c.variant, c.vs, c.vs_label) for c in config.comparisons()] == [
        ("none", "early_stop", "early_stop"),  # once: what training past the best costs
        ("random-input", "none", "none"),
        ("random-input", "early_stop", "early_stop"),
    ]
    judged = judged_outcomes(rows_for(HELDOUT["early_stop"], 0.0), early)
    assert judged["final_heldout"] == pytest.approx(2.9)  # its best checkpoint's, not its last
    # Judged at its best evaluation, its curve ends at its lowest point: no rebound to measure.
    assert judged["high_entropy_rebound"] is None
    plain = judged_outcomes(rows_for(HELDOUT["early_stop"], 0.0), none)
    assert plain["final_heldout"] == pytest.approx(3.3)


def paired(variant: str, mean: float | None, ci: float | None, excludes: bool) -> dict[str, Any]:
    stat = {"mean": mean, "ci95": ci, "n": 3}
    return {"variant": variant, "vs": "early_stop", "vs_label": "early_stop"} | {
        "final_heldout_diff": stat,
        "excludes_zero": excludes,
    }


def test_the_verdict_says_whether_anything_beat_the_best_epoch() -> None:
    beat = verdict([paired("random-input", -0.2, 0.1, True), paired("none", 0.4, 0.1, True)])
    assert beat.startswith("Beat the best epoch of plain fine-tuning (early_stop), beyond seed")
    assert "random-input (\u22120.200 ± 0.100)" in beat and "none" not in beat.split(":")[1]
    nothing = verdict([paired("random-input", -0.05, 0.1, False), paired("none", 0.4, 0.1, True)])
    assert nothing.startswith("Nothing beat the best epoch of plain fine-tuning (early_stop)")
    assert "of 2 variants compared with it, 1 ended with a higher held-out loss" in nothing
    assert "no early_stop variant" in verdict([])


def test_a_study_grows_by_the_runs_of_its_new_variants_and_seeds() -> None:
    folder = create_study(
        StudyConfig.model_validate({"name": "g", "variants": ["none"], "seeds": [0, 1]})
    )
    first = folder.read()["runs"]
    folder.update_run(first[0]["id"], status="succeeded")
    grown = StudyConfig.model_validate(
        {"name": "g", "variants": ["none", "early_stop"], "seeds": [0, 1]}
    )
    added = extend_study(folder, grown)
    assert [(r["variant"], r["seed"], r["status"]) for r in added] == [
        ("early_stop", 0, "queued"), ("early_stop", 1, "queued"),
    ]  # fmt: skip
    record = folder.read()
    assert record["runs"][: len(first)][0]["status"] == "succeeded"  # the runs done stay
    assert [r["id"] for r in record["runs"]] == [r["id"] for r in first + added]
    assert StudyConfig.model_validate(record["config"]) == grown
    config = RunFolder(Path(record["runs_dir"]) / added[0]["id"]).read_config()
    assert config.early_stopping_patience == EARLY_STOP_PATIENCE and config.seed == 0
    reseeded = grown.model_copy(update={"seeds": [1, 2]})  # not the study's seeds first
    with pytest.raises(ValueError, match="variants or seeds added at the end"):
        extend_study(folder, reseeded)
    more_seeds = extend_study(folder, grown.model_copy(update={"seeds": [0, 1, 2]}))
    assert [(r["variant"], r["seed"]) for r in more_seeds] == [("none", 2), ("early_stop", 2)]
    assert len(folder.read()["runs"]) == len(first) + len(added) + 2  # every earlier run stays


def test_the_report_is_one_offline_file_with_the_pages_data(tmp_path: Path) -> None:
    folder = finished_study()
    data = folder_study_view(folder)
    assert [r["variant"] for r in data["summary"]] == ["none", "early_stop", "random-input"]
    early = data["summary"][1]["final_heldout"]
    assert early["mean"] == pytest.approx(2.925)  # (2.9 + 2.95) / 2: at each run's best
    assert data["verdict"].startswith("Nothing beat the best epoch of plain fine-tuning")

    out = tmp_path / "report.html"
    done = CliRunner().invoke(app, ["study", "--report", str(out), str(folder.path)])
    assert done.exit_code == 0, done.output
    html = out.read_text(encoding="utf-8")
    assert html == report_html(data)
    assert not re.search(r"https?://", html, re.IGNORECASE)  # no reference to any host at all
    assert not re.search(r"<(script|link|img|iframe)\b", html, re.IGNORECASE)
    assert html.count("<svg viewBox") == 3 and data["verdict"] in html
    for text in ("2.925 ± ", "random-input vs early_stop: ", "early_stop", '"seeds": [', "step"):
        assert text in html, text
    assert len(html.encode()) < 1_000_000


def test_the_report_route_serves_the_same_file(make_client: ClientFactory) -> None:
    folder = finished_study("served")
    with make_client() as client:
        detail = client.get(f"/api/studies/{folder.id}").json()
        res = client.get(detail["links"]["report"])
        missing = client.get("/studies/s20990101-000000-beef/report.html")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    assert f'filename="study-{folder.id}.html"' in res.headers["content-disposition"]
    assert detail["verdict"] in res.text and not re.search(r"https?://", res.text)
    assert missing.status_code == 404 and "detail" in missing.json()
