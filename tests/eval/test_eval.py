"""`entrodrop eval` and entrodrop.eval: lm-evaluation-harness on the tiny model, offline."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from entrodrop.cli import app
from entrodrop.eval import tasks as eval_tasks
from entrodrop.eval.docs_mc import DATA, build

runner = CliRunner()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches the network: the hub is 'unreachable' and the libraries are offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")


def run_eval(*args: str) -> Any:
    return runner.invoke(app, ["eval", *args])


def test_the_bundled_questions_are_the_committed_file() -> None:
    """docs_mc.py rebuilds exactly the committed data on this CPython (3.11, as CI)."""
    committed = [json.loads(line) for line in DATA.read_text("utf-8").splitlines()]
    assert committed == build()
    assert all(len(r["choices"]) == 4 and 0 <= r["label"] < 4 for r in committed)
    for row in committed:  # the answer's own name is blanked out of its docstring
        name = row["choices"][row["label"]].split(".")[-1]
        assert not re.search(rf"\b{re.escape(name)}\b", row["docstring"]), row


def test_offline_tasks_on_the_tiny_model_give_accuracies_with_standard_errors(
    tiny_model_dir: Path,
) -> None:
    result = run_eval("--model", str(tiny_model_dir), "--tasks", "offline", "--limit", "12",
                      "--batch-size", "4", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"results", "model", "seconds"} and data["offline"] is True
    mc = data["results"]["python_docs_mc"]
    assert 0.0 <= mc["acc"] <= 1.0 and math.isfinite(mc["acc_stderr"]) and mc["n"] == 12
    ppl = data["results"]["python_reference_ppl"]
    assert ppl["word_perplexity"] > 1 and ppl["bits_per_byte"] > 0


def test_a_perplexity_task_over_a_local_text_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    notes = tmp_path / "my notes.txt"
    notes.write_text("First note about lists.\n\n\nSecond note, about dicts and sets.\n", "utf-8")
    result = run_eval("--model", str(tiny_model_dir), "--tasks", f"ppl:{notes}", "--json")
    assert result.exit_code == 0, result.output
    (task,) = json.loads(result.stdout)["results"].items()
    assert task[0] == "ppl_my_notes" and task[1]["n"] == 2 and task[1]["byte_perplexity"] > 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "pica"], "unknown task 'pica' (did you mean pisa, piqa"),
        (["--tasks", "offline", "--limit", "0"], "--limit must be at least 1"),
        (["--tasks", "humaneval"], "--allow-code-execution"),
        (["--tasks", "ppl:/no/such/file.txt"], "ppl:/no/such/file.txt: unknown dataset"),
        (["--tasks", " , "], "no task given"),
    ],
)
def test_bad_requests_get_a_clear_message(
    args: list[str], message: str, tiny_model_dir: Path
) -> None:
    result = run_eval("--model", str(tiny_model_dir), *args)
    assert result.exit_code == 2 and message in result.output


def test_a_hub_task_offline_fails_saying_it_needs_network(tiny_model_dir: Path) -> None:
    """HF_HUB_OFFLINE (or no reachable hub) switches every library offline first: the hub task
    fails at its first download with our message, instead of retrying for a minute."""
    result = run_eval("--model", str(tiny_model_dir), "--tasks", "piqa", "--limit", "2")
    assert result.exit_code == 2
    assert "piqa: needs its dataset from the Hugging Face hub" in result.output


def test_without_network_the_libraries_are_switched_offline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from entrodrop import network

    for name in network.OFFLINE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(network, "connect", lambda *a, **k: False)
    assert not network.hub_reachable()
    network.go_offline()
    assert all(os.environ[name] == "1" for name in network.OFFLINE_VARS)


def test_results_are_tidied_to_plain_metric_names() -> None:
    from entrodrop.eval import tidy_results

    raw = {
        "t": {"alias": "t", "acc,none": 0.5, "acc_stderr,none": 0.1, "sample_len": 4},
        "g": {"alias": "g"},
        "x": {"exact_match,strict-match": 1.0},
    }
    assert tidy_results(raw) == {
        "t": {"acc": 0.5, "acc_stderr": 0.1, "n": 4.0},
        "x": {"exact_match[strict-match]": 1.0},
    }


def test_the_task_list_names_the_offline_group_and_the_papers_suite() -> None:
    result = run_eval("--list")
    assert result.exit_code == 0
    assert eval_tasks.OFFLINE in result.output and "arc_challenge" in result.output


def test_a_run_with_eval_tasks_scores_its_final_and_best_weights(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """eval_tasks: after training, each task on the final model and the best checkpoint (when
    kept at another step); summary.json, metrics.jsonl rows at each weights' step, and the
    evaluate-only entry the dashboard's Evaluate action starts."""
    from entrodrop.config import RunConfig
    from entrodrop.metrics import benchmark_name
    from entrodrop.runfolder import RunFolder, read_json
    from entrodrop.training.run import main, train

    config = RunConfig(
        model=str(tiny_model_dir), dataset=str(small_corpus), max_steps=4, eval_every=2,
        seq_len=32, batch_size=4, max_train_tokens=512, max_eval_tokens=128,
        learning_rate=0.5, method="none", save_total_limit=1,
        eval_tasks=["python_docs_mc"], eval_limit=4,
    )  # fmt: skip
    run_dir = tmp_path / "run"
    RunFolder(run_dir).write_config(config)  # as a launcher does
    summary = train(config, run_dir)
    bench = summary["benchmarks"]
    assert summary["status"] == "succeeded" and bench["errors"] == [] and not bench["stopped"]
    final = bench["final"]["results"]["python_docs_mc"]
    assert bench["final"]["step"] == 4 and final["n"] == 4 and 0 <= final["acc"] <= 1
    rows = RunFolder(run_dir).read_metrics()
    name = benchmark_name("python_docs_mc", "acc")
    steps = {r["step"] for r in rows if r["name"] == name}
    assert 4 in steps and steps <= {2, 4}  # the final weights, and the best's if kept apart
    if "best" in bench:
        assert bench["best"]["step"] == 2 and steps == {2, 4}

    # The Evaluate action: a request file, then the evaluate-only entry; the run stays succeeded.
    (run_dir / "evaluate.json").write_text(json.dumps({"tasks": ["python_reference_ppl"],
                                                       "limit": 2}))  # fmt: skip
    assert main(["--run-dir", str(run_dir), "--evaluate"]) == 0
    again = read_json(run_dir / "summary.json") or {}
    assert set(again["benchmarks"]["final"]["results"]) == {"python_reference_ppl"}
    assert again["steps"] == 4 and not (run_dir / "evaluate.json").exists()
    assert (read_json(run_dir / "status.json") or {})["status"] == "succeeded"
