"""After training on the tiny model: the best checkpoint kept beside the last one, early stopping,
resume keeping both, and the run:<id>:best model spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import entrodrop
from entrodrop import runfolder as rf
from entrodrop.config import RunConfig
from entrodrop.metrics import SELECTABLE, best_evaluation
from entrodrop.models import ModelLoadError
from entrodrop.training.run import train

LAST = 8


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread


def overfitting(model: Path, data: Path, **kw: Any) -> RunConfig:
    """256 training tokens at a high learning rate, evaluated every step: the held-out loss falls
    for a few steps and then rises, so the best step is not the last."""
    base: dict[str, Any] = {
        "model": str(model), "dataset": str(data), "method": "none", "max_steps": LAST,
        "seq_len": 32, "batch_size": 4, "eval_every": 1, "max_train_tokens": 256,
        "max_eval_tokens": 256, "learning_rate": 0.03,
    }  # fmt: skip
    return RunConfig(**(base | kw))


def kept_steps(run_dir: Path) -> list[int]:
    return [rf.checkpoint_step(p) for p in rf.checkpoints(run_dir)]


def summary_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / rf.SUMMARY).read_text())


def test_the_best_checkpoint_is_kept_beside_the_last_with_a_limit_of_one(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    summary = train(overfitting(tiny_model_dir, small_corpus), run_dir)
    rows = rf.RunFolder(run_dir).read_metrics()
    best = best_evaluation(rows, "eval/loss")
    assert best is not None and 1 <= best.step < LAST  # the case that needs protecting
    # One definition: the summary, transformers' trainer state and the rows agree.
    assert summary["best_step"] == best.step and summary["best_metric"] == "eval/loss"
    assert summary["best_metrics"] == best.metrics and set(best.metrics) == set(SELECTABLE)
    assert best.metrics["eval/loss"] == min(
        r["value"] for r in rows if r["name"] == "eval/loss" and r["step"] >= 1
    )
    state = rf.trainer_state(rf.checkpoint_dir(run_dir, LAST))
    assert state["best_global_step"] == best.step
    assert state["best_metric"] == pytest.approx(best.value)
    # save_total_limit 1 (the default): the last checkpoint, plus the best one.
    assert kept_steps(run_dir) == [best.step, LAST]
    assert rf.best_checkpoint(run_dir) == rf.checkpoint_dir(run_dir, best.step)
    assert summary["stopped_early"] is False and summary["stop_reason"] is None
    assert (run_dir / rf.MODEL / "model.safetensors").is_file()  # model/ stays the final one

    # The model specs: run:<id> is the final model, :best and :<step> are checkpoints.
    runs = tmp_path
    final = entrodrop.load("run:run", device="cpu", dtype="float32", runs_dir=runs)
    best_model = entrodrop.load("run:run:best", device="cpu", dtype="float32", runs_dir=runs)
    by_step = entrodrop.load(f"run:run:{best.step}", device="cpu", dtype="float32", runs_dir=runs)
    assert Path(final.path) == run_dir / rf.MODEL and final.name == "run:run"
    assert Path(best_model.path) == Path(by_step.path) == rf.checkpoint_dir(run_dir, best.step)
    assert best_model.name == "run:run:best"
    for bad, says in [
        ("run:run:2", "no checkpoint at step 2 (kept: "),
        ("run:run:worst", "use 'final', 'best' or a step number"),
        ("run:../x:best", "invalid run id"),
    ]:
        with pytest.raises(ModelLoadError, match=says.replace("(", r"\(")):
            entrodrop.load(bad, device="cpu", runs_dir=runs)


def test_a_higher_limit_keeps_more_and_a_metric_can_be_chosen(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    cfg = overfitting(
        tiny_model_dir, small_corpus, save_total_limit=3, best_metric="eval/loss_high_entropy"
    )
    summary = train(cfg, run_dir)
    best = best_evaluation(rf.RunFolder(run_dir).read_metrics(), "eval/loss_high_entropy")
    assert best is not None and summary["best_step"] == best.step
    assert summary["best_metric"] == "eval/loss_high_entropy"
    # transformers' rule: at most 3 in all, the best and the last among them
    expected = sorted({best.step, LAST - 1, LAST} if best.step < LAST - 2 else {6, 7, 8})
    assert kept_steps(run_dir) == expected


def test_early_stopping_ends_the_run_succeeded_with_its_reason(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    summary = train(overfitting(tiny_model_dir, small_corpus, early_stopping_patience=1), run_dir)
    best = summary["best_step"]
    assert summary["status"] == "succeeded" and summary["stopped_early"] is True
    # patience 1: the first evaluation after the best that does not improve on it ends the run
    assert summary["steps"] == best + 1 < LAST and summary["total_steps"] == LAST
    reason = summary["stop_reason"]
    assert reason.startswith(f"early stopping at step {best + 1}: ") and f"step {best}" in reason
    status = rf.RunFolder(run_dir).read_status()
    assert status["status"] == "succeeded" and status["stopped_early"] is True
    assert status["stop_reason"] == reason and status["step"] == best + 1
    assert status["progress"] == 1.0 and status["best_step"] == best
    assert reason in (run_dir / rf.LOG).read_text()
    # its curves end where it stopped; its final model and the best checkpoint are kept
    assert max(r["step"] for r in rf.RunFolder(run_dir).read_metrics()) == best + 1
    assert kept_steps(run_dir) == [best, best + 1] and rf.has_final_model(run_dir)


def test_resume_keeps_the_best_record_and_the_early_stopping_count(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """Stopped two evaluations after its best and resumed, a run with patience 3 stops where the
    uninterrupted run does: the best (ours and transformers') and the count come back."""
    cfg = overfitting(tiny_model_dir, small_corpus, early_stopping_patience=3)
    straight = train(cfg, tmp_path / "straight")
    best = straight["best_step"]
    assert straight["stopped_early"] and straight["steps"] == best + 3 <= LAST

    run_dir = tmp_path / "resumed"

    def stop_after_the_next_step(rows: list[dict[str, Any]]) -> None:
        if any(r["name"] == "eval/loss" and r["step"] == best + 1 for r in rows):
            (run_dir / rf.STOP).touch()  # seen at the end of step best + 2: a full checkpoint

    first = train(cfg, run_dir, subscribers=[stop_after_the_next_step])
    assert first["status"] == "cancelled" and first["steps"] == best + 2
    assert kept_steps(run_dir) == [best, best + 2]
    assert rf.is_resumable_checkpoint(rf.checkpoint_dir(run_dir, best + 2))
    (run_dir / rf.STOP).unlink()
    resumed = train(cfg, run_dir, resume=True)
    # Two evaluations without improvement came back with the checkpoint: one more ends it (a
    # count starting again from 0 would run to the last step).
    assert resumed["status"] == "succeeded" and resumed["stopped_early"] is True
    assert resumed["steps"] == straight["steps"] and resumed["best_step"] == best
    assert resumed["best_metrics"] == pytest.approx(straight["best_metrics"])
    assert kept_steps(run_dir) == [best, best + 3]
