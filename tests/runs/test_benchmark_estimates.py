"""The benchmarks stage in a run's estimate: a prior for the offline tasks, what an earlier run
measured per model scored, nothing counted for hub tasks; and New run asks for the offline ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

from runs_helpers import ClientFactory
from test_jobs import tiny_config

from app.runs import cost, timings
from entrodrop import runfolder as rf
from entrodrop.eval.tasks import DOCS_MC, OFFLINE, OFFLINE_TASKS, offline_tokens


def _bench(estimate: dict) -> dict:
    return next(p for p in estimate["parts"] if p["key"] == "benchmarks")


def test_offline_benchmarks_get_a_prior_for_each_model_they_score(
    entrodrop_home: Path, tiny_model_dir: Path
) -> None:
    plain = cost.estimate(entrodrop_home, tiny_config(tiny_model_dir), 1, tiny_model_dir)
    assert all(p["key"] != "benchmarks" for p in plain["parts"])
    config = tiny_config(tiny_model_dir, eval_tasks=[OFFLINE], eval_limit=20)
    both = cost.estimate(entrodrop_home, config, 1, tiny_model_dir)
    part = _bench(both)
    assert part["source"] == "prior" and part["seconds"] > 0 and "2 models" in part["label"]
    assert both["duration_s"] == sum(p["seconds"] for p in both["parts"])
    # Without checkpoints only the final model is scored: half the stage.
    final_only = config.model_copy(update={"save_checkpoints": False})
    one = _bench(cost.estimate(entrodrop_home, final_only, 1, tiny_model_dir))
    assert one["seconds"] * 2 == part["seconds"] and "1 model)" in one["label"]
    # Fewer examples, fewer tokens; one of the two tasks, fewer still.
    assert offline_tokens(20) < offline_tokens(200) < offline_tokens(None)
    assert 0 < offline_tokens(20, (DOCS_MC,)) < offline_tokens(20)


def test_hub_benchmarks_are_named_but_not_counted(
    entrodrop_home: Path, tiny_model_dir: Path
) -> None:
    config = tiny_config(tiny_model_dir, eval_tasks=[OFFLINE, "piqa"])
    est = cost.estimate(entrodrop_home, config, 1, tiny_model_dir)
    part = _bench(est)
    assert part["source"] == "unknown" and part["seconds"] == 0.0
    assert "not counted: tasks from the hub" in cost.describe(est)


def test_a_finished_stage_is_remembered_per_model_and_not_as_start_up(
    entrodrop_home: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = tiny_config(tiny_model_dir, eval_tasks=[OFFLINE], eval_limit=20)
    cfg = config.model_dump(mode="json")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    bench = {"final": {"step": 4, "results": {}}, "best": {"step": 2, "results": {}},
             "errors": [], "stopped": False}  # fmt: skip
    timing = {"steps": 4, "step_s": 0.5, "benchmarks_s": 30.0}
    summary = {"timing": timing, "benchmarks": bench, "step_time_s": 0.5}
    (run_dir / rf.SUMMARY).write_text(json.dumps(summary))
    timings.remember(entrodrop_home, run_dir, cfg, 1, wall_s=40.0)
    tables = timings.load(entrodrop_home)
    assert tables["bench_s"][timings.bench_key(cfg)] == 15.0  # 30 s for two models
    assert tables["startup_s"][timings.model_key(cfg)] == 8.0  # 40 - 4 x 0.5 - 30
    part = _bench(cost.estimate(entrodrop_home, config, 1, tiny_model_dir))
    assert part == {**part, "source": "measured", "seconds": 30.0}
    # A stage that was stopped says little about a whole one: not remembered.
    other = config.model_copy(update={"eval_limit": 10}).model_dump(mode="json")
    (run_dir / rf.SUMMARY).write_text(
        json.dumps({**summary, "benchmarks": {**bench, "stopped": True}})
    )
    timings.remember(entrodrop_home, run_dir, other, 1, wall_s=40.0)
    assert timings.bench_key(other) not in timings.load(entrodrop_home)["bench_s"]


def test_new_run_asks_for_the_offline_benchmarks_and_estimates_them(
    make_client: ClientFactory,
) -> None:
    with make_client() as client:
        form = client.get("/api/runs/form").json()
        assert form["defaults"]["eval_tasks"] == [OFFLINE] and form["defaults"]["eval_limit"] == 200
        study = client.get("/api/studies/form").json()
        assert study["defaults"]["eval_tasks"] == [OFFLINE]
        check = client.post("/api/runs/check", json=form["defaults"]).json()
        assert "benchmarks (offline; 2 models)" in check["estimate_text"]


def test_the_new_run_page_ticks_the_offline_tasks(make_client: ClientFactory) -> None:
    with make_client() as client:
        html = client.get("/runs/new").text
    ticked = re.findall(r'class="eval-task" value="([^"]+)" checked', html)
    assert ticked == list(OFFLINE_TASKS)
    assert 'id="f-eval_limit" data-field="eval_limit"' in html and 'value="200"' in html
