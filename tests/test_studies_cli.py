"""`entrodrop study` end to end on the tiny model, and `entrodrop train`'s generated flags."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from entrodrop.cli import app
from entrodrop.config import EntroDropConfig, RunConfig
from entrodrop.runfolder import RunFolder
from entrodrop.studies.folder import StudyFolder

runner = CliRunner()


def tiny_base(model: Path, data: Path) -> dict[str, Any]:
    return {
        "model": str(model),
        "dataset": str(data),
        "max_steps": 2,
        "eval_every": 1,
        "seq_len": 32,
        "batch_size": 4,
        "max_train_tokens": 512,
        "max_eval_tokens": 128,
        "learning_rate": 1e-3,
        "dtype": "float32",
        "save_checkpoints": True,  # the study's keep_checkpoints (false) must win
    }


def write_study(tmp_path: Path, **study: Any) -> Path:
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study), encoding="utf-8")
    return path


def only_study(home: Path) -> StudyFolder:
    (folder,) = (home / "studies").iterdir()
    return StudyFolder(folder)


def finite(stat: dict[str, Any]) -> bool:
    return all(isinstance(stat[k], float) and math.isfinite(stat[k]) for k in ("mean", "ci95"))


def test_study_of_two_variants_and_two_seeds(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, entrodrop_home: Path
) -> None:
    variants = [
        "none",
        {"label": "ed-loss", "method": "entrodrop", "entrodrop": {"drop_mode": "loss"}},
    ]
    config = write_study(
        tmp_path,
        name="smoke",
        base=tiny_base(tiny_model_dir, small_corpus),
        variants=variants,
        seeds=[0, 1],
    )
    result = runner.invoke(app, ["study", "--config", str(config), "--threads", "1"])
    assert result.exit_code == 0, result.output
    folder = only_study(entrodrop_home)
    record = folder.read()
    assert record["status"] == "succeeded" and record["name"] == "smoke"
    assert [(r["variant"], r["seed"], r["status"]) for r in record["runs"]] == [
        ("none", 0, "succeeded"),
        ("ed-loss", 0, "succeeded"),
        ("none", 1, "succeeded"),
        ("ed-loss", 1, "succeeded"),
    ]
    summary = json.loads(folder.summary_path.read_text())
    assert [r["variant"] for r in summary["summary"]] == ["none", "ed-loss"]
    for row in summary["summary"]:
        assert row["n"] == 2
        for name in ("final_heldout", "best_heldout", "final_general"):
            assert finite(row[name]), (row["variant"], name, row[name])
        # Three evaluations: a run still improving at the last has no rebound, and says why.
        rebound = row["high_entropy_rebound"]
        assert finite(rebound) or rebound["why"].startswith("not measured in"), rebound
        assert row["best_heldout"]["mean"] <= row["final_heldout"]["mean"]
    (paired,) = summary["paired"]
    assert (paired["variant"], paired["vs"], paired["vs_label"]) == ("ed-loss", "none", "none")
    assert finite(paired["final_heldout_diff"]) and isinstance(paired["excludes_zero"], bool)
    assert paired["reading"].startswith("ed-loss vs none: ")
    assert folder.csv_path.read_text().startswith("table,variant,vs,n,metric,mean,ci95")

    for run in record["runs"]:  # metrics only: no checkpoints, no final model
        run_dir = Path(record["runs_dir"]) / run["id"]
        assert run_dir.parent == entrodrop_home / "runs"
        assert not (run_dir / "model").exists() and not list(run_dir.glob("checkpoint-*"))
        saved = RunFolder(run_dir).read_config()
        assert saved.seed == saved.entrodrop.seed == run["seed"]
        steps = {r["step"] for r in RunFolder(run_dir).read_metrics() if r["name"] == "eval/loss"}
        assert steps == {0, 1, 2}  # step 0: the starting model
    # the table printed at the end
    assert "| variant | n | final held-out loss |" in result.output
    assert paired["reading"] in result.output


def test_a_failed_run_is_reported_and_the_study_goes_on(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, entrodrop_home: Path
) -> None:
    # valid, but fails in training: the input mode feeds an id far beyond the vocabulary
    ed = {"entropy_source": "reference", "drop_mode": "input", "schedule": "constant"}
    bad = {"label": "bad", "method": "random", "entrodrop": ed | {"drop_token_id": 10**9}}
    runs_dir = tmp_path / "elsewhere"
    config = write_study(
        tmp_path,
        name="one bad",
        base=tiny_base(tiny_model_dir, small_corpus),
        variants=[bad, "none"],
        seeds=[5],
    )
    home = tmp_path / "other-home"
    args = ["study", "-c", str(config), "--runs-dir", str(runs_dir), "--home", str(home)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert not (entrodrop_home / "studies").exists()
    record = only_study(home).read()
    assert record["status"] == "partial"  # one failed, the others succeeded
    statuses = {r["variant"]: r for r in record["runs"]}
    assert statuses["bad"]["status"] == "failed" and statuses["bad"]["error"]
    assert statuses["none"]["status"] == "succeeded"
    assert (runs_dir / statuses["none"]["id"] / "metrics.jsonl").is_file()
    assert f"run {statuses['bad']['id']} failed" in result.output
    assert "n < 2: no interval" in result.output  # one seed: the table says so plainly

    # mend the failed run's config and continue: only that run trains again
    bad_dir, good_dir = runs_dir / statuses["bad"]["id"], runs_dir / statuses["none"]["id"]
    mended = RunFolder(bad_dir).read_config().model_copy(update={"method": "none"})
    (bad_dir / "config.json").write_text(mended.model_dump_json())
    good_before = (good_dir / "metrics.jsonl").stat().st_mtime_ns
    study_dir = only_study(home).path
    result = runner.invoke(app, ["study", "--resume", str(study_dir), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in StudyFolder(study_dir).read()["runs"]} == {"succeeded"}
    assert (good_dir / "metrics.jsonl").stat().st_mtime_ns == good_before
    steps = [r["step"] for r in RunFolder(bad_dir).read_metrics() if r["name"] == "eval/loss"]
    assert steps == [0, 1, 2]  # the failed attempt's rows are gone, nothing twice


def eval_losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["value"]) for r in RunFolder(run_dir).read_metrics()
            if r["name"] == "eval/loss"]  # fmt: skip


def test_study_in_two_lanes_matches_one_after_another(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, entrodrop_home: Path
) -> None:
    """--workers 2: runs train in two lane processes, a failure is recorded and the others go on,
    and each run's numbers equal those of the same study run in this process."""
    ed = {"entropy_source": "reference", "drop_mode": "input", "schedule": "constant"}
    bad = {"label": "bad", "method": "random", "entrodrop": ed | {"drop_token_id": 10**9}}
    good = ["none", {"label": "ed-input", "method": "entrodrop", "entrodrop": ed}]
    base = tiny_base(tiny_model_dir, small_corpus)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    lanes = write_study(tmp_path / "a", name="lanes", base=base, variants=[*good, bad], seeds=[0])
    args = ["study", "-c", str(lanes), "--runs-dir", str(tmp_path / "lane-runs")]
    result = runner.invoke(app, [*args, "--workers", "2", "--threads", "1"])
    assert result.exit_code == 1, result.output  # one run failed
    record = only_study(entrodrop_home).read()
    assert record["status"] == "partial", record["runs"]  # one failed, the others succeeded
    status = {r["variant"]: r for r in record["runs"]}
    assert status["bad"]["status"] == "failed" and status["bad"]["error"]
    assert status["none"]["status"] == status["ed-input"]["status"] == "succeeded"

    home = tmp_path / "turn-home"
    turn = write_study(tmp_path / "b", name="in turn", base=base, variants=good, seeds=[0])
    result = runner.invoke(app, ["study", "-c", str(turn), "--home", str(home), "--threads", "1"])
    assert result.exit_code == 0, result.output
    in_turn = {r["variant"]: r["id"] for r in only_study(home).read()["runs"]}
    for variant, run_id in in_turn.items():
        expected = eval_losses(home / "runs" / run_id)
        assert [s for s, _ in expected] == [0, 1, 2]
        got = eval_losses(tmp_path / "lane-runs" / status[variant]["id"])
        assert [s for s, _ in got] == [0, 1, 2]
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-5), variant


@pytest.mark.processes
def test_ctrl_c_stops_both_lanes_and_the_study_records_it(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) during `--workers 2`: both lanes stop
    their runs cleanly, study.json records them `cancelled`, the rest stay queued and the study
    `interrupted` (as the dashboard shows it: unfinished, --resume continues), exit 0."""
    import os
    import signal
    import subprocess
    import sys

    from waiting import wait_sync

    from entrodrop.runfolder import read_status

    base = tiny_base(tiny_model_dir, small_corpus) | {"max_steps": 10**6, "eval_every": 10**5}
    config = write_study(tmp_path, name="stop", base=base, variants=["none"], seeds=[0, 1, 2])
    home = tmp_path / "home"
    argv = [sys.executable, "-m", "entrodrop.cli", "study", "-c", str(config), "--workers", "2"]
    env = {**os.environ, "ENTRODROP_HOME": str(home)}
    proc = subprocess.Popen(
        [*argv, "--home", str(home), "--threads", "1"], env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:

        def both_training() -> bool:
            studies = list((home / "studies").glob("*/study.json"))
            if not studies:
                return False
            record = StudyFolder(studies[0].parent).read()
            steps = [
                (read_status(Path(record["runs_dir"]) / r["id"]) or {}).get("step") or 0
                for r in record["runs"]
                if r["status"] == "running"
            ]
            return len(steps) == 2 and min(steps) >= 1

        wait_sync(both_training, what="two lanes past their first step")
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    record = only_study(home).read()
    assert record["status"] == "interrupted"
    assert [r["status"] for r in record["runs"]] == ["cancelled", "cancelled", "queued"]
    assert "continue with: entrodrop study --resume" in output


def test_first_variants_run_before_the_rest() -> None:
    from entrodrop.studies.local import _ordered_todo

    runs = [
        {"id": f"{v}{s}", "variant": v, "seed": s, "status": "succeeded" if v + str(s) == "b0"
         else "queued"} for s in (0, 1) for v in ("a", "b", "c")
    ]  # fmt: skip
    order = [r["id"] for r in _ordered_todo(runs, ["c", "b"])]
    assert order == ["c0", "b1", "c1", "a0", "a1"]  # b0 is done; else the study's order kept
    assert [r["id"] for r in _ordered_todo(runs, [])] == ["a0", "c0", "a1", "b1", "c1"]


def test_bench_script_continues_a_study_moved_to_another_folder(tmp_path: Path) -> None:
    """A committed study continues in a fresh clone: its saved runs_dir follows the folder."""
    from bench import reproduce_study
    from entrodrop.studies.config import StudyConfig

    config = StudyConfig.model_validate({"name": "moved", "variants": ["none"], "seeds": [0]})
    first = reproduce_study.study_folder(config, tmp_path / "old")
    assert first is not None
    (tmp_path / "old").rename(tmp_path / "new")
    again = reproduce_study.study_folder(config, tmp_path / "new", create=False)
    assert again is not None
    assert again.id == first.id
    assert Path(again.read()["runs_dir"]) == (tmp_path / "new" / "runs").resolve()
    assert (Path(again.read()["runs_dir"]) / again.read()["runs"][0]["id"]).is_dir()


def test_study_help() -> None:
    result = runner.invoke(app, ["study", "--help"])
    assert result.exit_code == 0 and "--config" in result.output and "--resume" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["study"], "either --config or --resume"),
        (["study", "--resume", "/no/such/study"], "not a study folder"),
    ],
)
def test_study_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output


def test_study_config_errors_are_listed(tmp_path: Path) -> None:
    config = write_study(tmp_path, name="x", variants=["none", "none"], seeds=[1, 1])
    result = runner.invoke(app, ["study", "--config", str(config)])
    assert result.exit_code == 2
    assert "seeds must be unique" in result.output and "Traceback" not in result.output


def test_train_help_lists_every_run_config_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich shortens long option names on narrow screens
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    flags = [name.replace("_", "-") for name in RunConfig.model_fields if name != "entrodrop"]
    flags += ["entrodrop-" + name.replace("_", "-") for name in EntroDropConfig.model_fields]
    missing = [f for f in flags if f"--{f}" not in result.output]
    assert not missing and "--threads" in result.output and "--no-save-model" in result.output


def test_train_flags_override_the_config_file(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    file = tmp_path / "run.json"
    file.write_text(json.dumps(tiny_base(tiny_model_dir, small_corpus) | {"learning_rate": 0.5}))
    run_dir = tmp_path / "run"
    args = ["train", "-c", str(file), "--run-dir", str(run_dir), "--max-steps", "1"]
    args += ["--learning-rate", "0.002", "--no-save-checkpoints", "--no-save-model"]
    args += ["--method", "random", "--entrodrop-drop-mode", "both", "--threads", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = RunFolder(run_dir).read_config()
    assert (saved.max_steps, saved.learning_rate, saved.method) == (1, 0.002, "random")
    assert saved.entrodrop.drop_mode == "both" and saved.seq_len == 32  # the rest from the file
    assert not saved.save_checkpoints and not saved.save_model
    assert not (run_dir / "model").exists() and not list(run_dir.glob("checkpoint-*"))
    bad = runner.invoke(app, ["train", "--entrodrop-quantile", "2", "--seq-len", "4"])
    assert bad.exit_code == 2
    assert "entrodrop.quantile" in bad.output and "seq_len" in bad.output


def test_bench_script_runs_the_smoke_study_and_writes_table_and_plots(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    from bench import reproduce_study

    repo = Path(__file__).resolve().parent.parent
    smoke = json.loads((repo / "bench" / "studies" / "smoke.json").read_text())
    smoke["base"] |= tiny_base(tiny_model_dir, small_corpus)  # the smoke study on the tiny model
    config = write_study(tmp_path, **smoke)
    results = tmp_path / "results"
    assert reproduce_study.main([str(config), "--results", str(results)]) == 0
    payload = json.loads((results / "study_smoke.json").read_text())
    assert payload["study"]["status"] == "succeeded" and len(payload["study"]["runs"]) == 4
    assert all(row["n"] == 2 and finite(row["final_heldout"]) for row in payload["summary"])
    curve = payload["curves"]["none"]["eval/loss"]
    assert curve["step"] == [0, 1, 2] and curve["n"] == [2, 2, 2]
    assert all(
        lo <= m <= hi for lo, m, hi in zip(curve["lo"], curve["mean"], curve["hi"], strict=True)
    )
    assert "| variant | n |" in (results / "study_smoke.md").read_text()
    for png in ("study_smoke_curves.png", "study_smoke_rebound.png"):
        assert (results / png).read_bytes().startswith(b"\x89PNG")
    # the same command again continues the same study (nothing left to run)
    assert reproduce_study.main([str(config), "--results", str(results), "--report-only"]) == 0
    # the doc's study-table block gets the same tables (the rest of the doc is kept)
    doc = tmp_path / "doc.md"
    marker = f"<!-- study table: {(results / 'study_smoke.md').resolve().as_posix()} -->"
    doc.write_text(f"# Doc\n{marker}\nold\n<!-- end of study table -->\ntail\n")
    again = [str(config), "--results", str(results), "--report-only", "--update-doc", str(doc)]
    assert reproduce_study.main(again) == 0
    table = (results / "study_smoke.md").read_text().strip()
    assert doc.read_text() == f"# Doc\n{marker}\n{table}\n<!-- end of study table -->\ntail\n"
    doc.write_text("no block here\n")
    assert reproduce_study.main(again) == 2
    # reporting on a study that is not there starts none
    elsewhere = ["--results", str(tmp_path / "none"), "--report-only"]
    assert reproduce_study.main([str(config), *elsewhere]) == 2
    assert not (tmp_path / "none" / "study-smoke").exists()
    assert len(list((results / "study-smoke" / "studies").iterdir())) == 1


def test_bench_script_continues_a_study_saved_before_a_config_field_was_added(
    tmp_path: Path,
) -> None:
    """A study.json written before RunConfig grew a field (here: heldout_dataset) is still the
    same study: the script continues it instead of starting a new one beside it."""
    from bench import reproduce_study
    from entrodrop.studies.config import StudyConfig

    config = StudyConfig.model_validate({"name": "older", "variants": ["none"], "seeds": [0]})
    work = tmp_path / "work"
    first = reproduce_study.study_folder(config, work)
    assert first is not None
    record = first.read()
    del record["config"]["base"]["heldout_dataset"]  # as an older version saved it
    first.write(record)
    again = reproduce_study.study_folder(config, work)
    assert again is not None and again.path == first.path
    assert len(list((work / "studies").iterdir())) == 1


def test_a_study_being_run_is_refused_to_a_second_runner(tmp_path: Path) -> None:
    """Two processes on one study would train the same runs at once: the second is refused,
    from the library and from the CLI, naming the one that runs it."""
    import os

    from entrodrop.studies.config import StudyConfig
    from entrodrop.studies.folder import StudyBusy
    from entrodrop.studies.local import create_study, run_study

    config = StudyConfig.model_validate({"name": "busy", "variants": ["none"], "seeds": [0]})
    folder = create_study(config, tmp_path / "runs", tmp_path / "studies")
    assert not folder.is_running()
    with folder.running_here():
        assert folder.is_running()
        with pytest.raises(StudyBusy, match=f"pid {os.getpid()}"):
            run_study(folder, progress=False)
        result = runner.invoke(app, ["study", "--resume", str(folder.path)])
        assert result.exit_code == 2
        assert "being run by another process" in result.output
    assert not folder.is_running()
    assert [r["status"] for r in folder.read()["runs"]] == ["queued"]  # nothing was touched


def test_a_killed_runner_leaves_the_study_not_running(tmp_path: Path) -> None:
    """The OS drops the study's lock when its process dies, even on SIGKILL (no stale lock)."""
    import subprocess
    import sys

    from entrodrop.studies.config import StudyConfig
    from entrodrop.studies.local import create_study

    config = StudyConfig.model_validate({"name": "killed", "variants": ["none"], "seeds": [0]})
    folder = create_study(config, tmp_path / "runs", tmp_path / "studies")
    holder = (
        "import sys; from entrodrop.studies.folder import StudyFolder\n"
        f"with StudyFolder({str(folder.path)!r}).running_here():\n"
        "    print('held', flush=True); sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert folder.is_running()
        proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not folder.is_running()
    with folder.running_here():  # and the next runner takes it at once
        assert folder.is_running()


@pytest.mark.processes
def test_a_cli_study_trains_each_run_under_accelerate_with_two_cpu_processes(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, entrodrop_home: Path
) -> None:
    """`entrodrop study --processes 2` launches each run the way the dashboard does
    (entrodrop.launch): `accelerate launch` with two gloo processes on a CPU."""
    base = tiny_base(tiny_model_dir, small_corpus) | {"batch_size": 2, "max_steps": 2}
    config = write_study(tmp_path, name="two", base=base, variants=["none"], seeds=[0])
    result = runner.invoke(app, ["study", "-c", str(config), "--processes", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    (run,) = only_study(entrodrop_home).read()["runs"]
    run_dir = entrodrop_home / "runs" / run["id"]
    assert run["status"] == "succeeded"
    output = (run_dir / "output.txt").read_text()
    assert "accelerate.commands.launch" in output and "--num_processes 2" in output
    assert "processes: 2" in (run_dir / "log.txt").read_text()
