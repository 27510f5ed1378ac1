"""The token record of real tiny-model runs: a row per evaluation whose mean is eval/loss, the
final row equal to scoring the saved model, resume, restart, drop counts and the bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import entrodrop
from entrodrop.config import RunConfig
from entrodrop.runfolder import RunFolder
from entrodrop.tokens import MAX_EVALUATIONS, MAX_PROBE_TOKENS, NoTokenRecord
from entrodrop.tokens.view import tokens_view
from entrodrop.training import diagnostics
from entrodrop.training.reference import forward_token_stats
from entrodrop.training.run import load_run_data, train

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread


def config(model: Path, data: Path | str, **kw: Any) -> RunConfig:
    base: dict[str, Any] = {
        "model": str(model),
        "dataset": str(data),
        "max_steps": 4,
        "seq_len": 32,
        "batch_size": 4,
        "eval_every": 2,
        "max_train_tokens": 2048,
        "max_eval_tokens": 256,
        "learning_rate": 1e-3,
        "dtype": "float32",
    }
    return RunConfig(**{**base, **kw})


def eval_losses(run_dir: Path) -> dict[int, float]:
    rows = RunFolder(run_dir).read_metrics()
    return {r["step"]: r["value"] for r in rows if r["name"] == "eval/loss"}


def assert_rows_are_the_curve(run_dir: Path) -> None:
    """One row per evaluation in the metrics (step 0 included), each averaging to eval/loss."""
    record = RunFolder(run_dir).read_tokens()
    curve = eval_losses(run_dir)
    assert record.steps.tolist() == sorted(curve)
    assert record.heldout_means() == pytest.approx([curve[s] for s in sorted(curve)], abs=1e-4)


def test_a_row_per_evaluation_whose_mean_is_eval_loss_and_equals_the_saved_model(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[bool] = []
    real = diagnostics.forward_token_stats

    def spy(*args: Any, **kw: Any) -> Any:
        asked.append(kw.get("with_rank", False))
        return real(*args, **kw)

    monkeypatch.setattr(diagnostics, "forward_token_stats", spy)
    cfg = config(tiny_model_dir, small_corpus, record_ranks=True)
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    assert sorted(set(asked)) == [False, True]  # ranks of the held-out set, not of general text
    assert_rows_are_the_curve(run_dir)
    record = RunFolder(run_dir).read_tokens()
    assert record.steps.tolist() == [0, 2, 4] and record.probe.covers_eval
    view = tokens_view(record)  # what the API and the CLI print: rounded, aligned arrays
    for row, step in zip(view["loss"], view["steps"], strict=True):
        assert len(row) == view["n_tokens"] == len(view["tokens"])
        assert np.mean(row) == pytest.approx(eval_losses(run_dir)[step], abs=1e-4)

    # The last row is what the saved model says about the same tokens.
    loaded = entrodrop.load(str(run_dir / "model"), device="cpu", dtype="float32")
    heldout = load_run_data(cfg, loaded.tokenizer).heldout.ids
    stats = forward_token_stats(loaded.model, heldout, None, with_loss=True, with_rank=True)
    p = record.probe
    assert stats.loss is not None and stats.rank is not None
    assert p.ids.tolist() == heldout[p.block, p.position].tolist()
    np.testing.assert_allclose(record.loss[-1], stats.loss[p.block, p.position], atol=1e-4)
    np.testing.assert_allclose(record.entropy[-1], stats.entropy[p.block, p.position], rtol=2e-3)
    assert record.rank is not None
    assert record.rank[-1].tolist() == stats.rank[p.block, p.position].int().tolist()


def test_no_ranks_by_default_and_nothing_at_all_when_off(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[bool] = []
    real = diagnostics.forward_token_stats

    def spy(*args: Any, **kw: Any) -> Any:
        asked.append(kw.get("with_rank", False))
        return real(*args, **kw)

    monkeypatch.setattr(diagnostics, "forward_token_stats", spy)
    train(config(tiny_model_dir, small_corpus), tmp_path / "default")
    assert asked and not any(asked)  # ranks cost a pass over the logits: only when asked
    assert RunFolder(tmp_path / "default").read_tokens().rank is None
    run_dir = tmp_path / "off"
    train(config(tiny_model_dir, small_corpus, record_tokens=False), run_dir)
    assert not any(asked)
    with pytest.raises(NoTokenRecord):
        RunFolder(run_dir).read_tokens()
    assert eval_losses(run_dir)  # the curves as ever


def test_resume_keeps_one_consistent_record(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    cfg = config(tiny_model_dir, small_corpus, max_steps=6, eval_every=2)

    def stop_after_first_log(rows: list[dict[str, Any]]) -> None:
        (run_dir / "STOP").touch()

    assert train(cfg, run_dir, subscribers=[stop_after_first_log])["status"] == "cancelled"
    stopped = RunFolder(run_dir).read_status()["step"]
    folder = RunFolder(run_dir)
    record = folder.read_tokens()
    assert record.steps.max() <= stopped
    # An attempt killed after an evaluation whose checkpoint never completed leaves a later row.
    folder.write_tokens(record.with_row(stopped + 1, record.loss[-1], record.entropy[-1]))
    seen_at_first_log: list[list[int]] = []

    def look(rows: list[dict[str, Any]]) -> None:
        if not seen_at_first_log:
            seen_at_first_log.append(folder.read_tokens().steps.tolist())

    (run_dir / "STOP").unlink()
    assert train(cfg, run_dir, resume=True, subscribers=[look])["status"] == "succeeded"
    assert seen_at_first_log[0] == [s for s in record.steps.tolist() if s <= stopped]
    assert_rows_are_the_curve(run_dir)
    assert RunFolder(run_dir).read_tokens().steps.tolist() == [0, 2, 4, 6]


def test_a_start_from_step_zero_replaces_an_old_record(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    cfg = config(tiny_model_dir, small_corpus, max_steps=2, save_checkpoints=False)
    train(cfg, run_dir)
    first = RunFolder(run_dir).read_tokens()
    train(cfg.model_copy(update={"max_steps": 1, "eval_every": 1}), run_dir)  # a restart
    again = RunFolder(run_dir).read_tokens()
    assert again.steps.tolist() == [0, 1] != first.steps.tolist()
    # metrics.jsonl keeps both attempts' rows (the server tells attempts apart): the last
    # eval/loss of step 1 is this attempt's.
    assert again.heldout_means()[1] == pytest.approx(eval_losses(run_dir)[1], abs=1e-4)


def realised_drops(run_dir: Path, tokens_per_step: int) -> int:
    """Every drop the metrics account for: the realised fraction x the tokens of each interval."""
    rows = [r for r in RunFolder(run_dir).read_metrics() if r["name"] == "drop/fraction_realised"]
    steps = [r["step"] for r in rows]
    spans = np.diff([0, *steps]).tolist()
    return sum(round(r["value"] * n * tokens_per_step) for r, n in zip(rows, spans, strict=True))


DROP_ALL = {"entropy_source": "reference", "drop_mode": "loss", "schedule": "constant"}
DROP_ALL |= {"rate_max": 1.0, "quantile": 0.5}


def test_training_tokens_count_their_drops(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    cfg = config(tiny_model_dir, small_corpus, entrodrop=DROP_ALL)
    cfg = cfg.model_copy(
        update={"record_train_tokens": MAX_PROBE_TOKENS, "record_general_tokens": True}
    )
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    record = RunFolder(run_dir).read_tokens()
    train_tokens = record.probe.of_source("train")
    assert train_tokens.sum() == 64 * 31  # every training token (2,048 in blocks of 32)
    assert record.probe.of_source("general").sum() > 0
    assert record.drops is not None
    drops = record.drops[:, train_tokens].astype(int)
    assert drops[0].sum() == 0 and (np.diff(drops, axis=0) >= 0).all()
    assert drops[-1].sum() == realised_drops(run_dir, 4 * 31) > 0  # every drop was counted
    assert (record.drops[:, ~train_tokens] == 0).all()
    assert_rows_are_the_curve(run_dir)  # the held-out rows still average to eval/loss


def test_drop_counts_survive_a_resume(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """The counts so far are in each checkpoint: a resumed run's count all the drops."""
    run_dir = tmp_path / "run"
    cfg = config(tiny_model_dir, small_corpus, entrodrop=DROP_ALL, max_steps=6)
    cfg = cfg.model_copy(update={"record_train_tokens": MAX_PROBE_TOKENS})

    def stop_at_step_3(rows: list[dict[str, Any]]) -> None:
        if any(r["step"] == 3 for r in rows):
            (run_dir / "STOP").touch()

    train(cfg.model_copy(update={"eval_every": 1}), run_dir, subscribers=[stop_at_step_3])
    (run_dir / "STOP").unlink()
    assert train(cfg.model_copy(update={"eval_every": 1}), run_dir, resume=True)["status"] == (
        "succeeded"
    )
    record = RunFolder(run_dir).read_tokens()
    assert record.drops is not None and record.steps.tolist() == list(range(7))
    total = record.drops[-1, record.probe.of_source("train")].astype(int).sum()
    assert total == realised_drops(run_dir, 4 * 31) > 0


def test_the_bound_holds_for_long_runs_and_large_held_out_sets(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "long"
    cfg = config(tiny_model_dir, "python-reference", max_steps=70, eval_every=1)
    cfg = cfg.model_copy(update={"max_eval_tokens": 64, "save_checkpoints": False})
    train(cfg.model_copy(update={"save_model": False}), run_dir)
    record = RunFolder(run_dir).read_tokens()
    assert record.n_rows <= MAX_EVALUATIONS
    assert record.steps.tolist() == list(range(0, 71, 2))  # first, last and an even grid
    curve = eval_losses(run_dir)
    assert record.heldout_means() == pytest.approx([curve[s] for s in record.steps], abs=1e-4)

    run_dir = tmp_path / "wide"
    cfg = config(tiny_model_dir, "python-reference", max_steps=1, eval_every=1)
    train(cfg.model_copy(update={"max_eval_tokens": None, "save_model": False}), run_dir)
    record = RunFolder(run_dir).read_tokens()
    assert MAX_PROBE_TOKENS - 31 < record.probe.n <= MAX_PROBE_TOKENS
    assert not record.probe.covers_eval  # a subset: its rows need not average to eval/loss
    blocks = np.unique(record.probe.block)
    assert blocks[0] == 0 and blocks[-1] > 4 * len(blocks)  # spread over the whole set
    assert "is a subset" in (run_dir / "log.txt").read_text()
