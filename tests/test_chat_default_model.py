"""Instruction data with the real default model (SmolLM2-135M-Instruct) and its own chat template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_files import variant, write
from typer.testing import CliRunner

from entrodrop.cli import app
from entrodrop.runfolder import latest_checkpoint

runner = CliRunner()


@pytest.mark.slow
def test_entrodrop_data_counts_the_same_conversation_alike_in_each_format(
    tmp_path: Path, default_loaded: object
) -> None:
    reports = []
    for fmt in ("messages", "alpaca", "sharegpt"):
        path = write(tmp_path / f"{fmt}.jsonl", [variant(fmt, i) for i in range(8)])
        result = runner.invoke(app, ["data", str(path), "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["format"] == fmt and report["examples"] == 8
        reports.append((report["tokens"], report["trained_tokens"], report["truncated"]))
    assert reports[0] == reports[1] == reports[2]
    tokens, trained, truncated = reports[0]
    assert 0 < trained < tokens and truncated == 0


@pytest.mark.slow
def test_train_on_a_messages_file_saves_a_checkpoint_that_scores(
    tmp_path: Path, default_loaded: object
) -> None:
    import entrodrop

    path = write(tmp_path / "chat.jsonl", [variant("messages", i) for i in range(10)])
    run_dir = tmp_path / "run"
    args = [
        "train", "--dataset", str(path), "--run-dir", str(run_dir), "--max-steps", "2",
        "--eval-every", "2", "--batch-size", "2", "--max-eval-tokens", "256", "--no-save-model",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["steps"] == 2
    assert summary["data"]["format"] == "messages"
    assert 0 < summary["data"]["trained_tokens"] < summary["data"]["tokens"]
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None
    loaded = entrodrop.load(str(checkpoint), device="cpu", dtype="float32")
    scored = entrodrop.score_conversation(loaded, variant("messages", 0)["messages"])
    assert scored.trained is not None and any(scored.trained)
    assert all(e is not None for e in scored.entropy[1:])
