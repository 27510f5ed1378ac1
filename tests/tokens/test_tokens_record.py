"""The per-token record: thinning within the bound, rows by step, the file and the run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from records import make_probe, make_record

from entrodrop.runfolder import RunFolder
from entrodrop.tokens import (
    MAX_EVALUATIONS,
    MAX_PROBE_TOKENS,
    NoTokenRecord,
    StepNotRecorded,
    TokenRecordError,
)
from entrodrop.tokens.record import (
    RANK_CAP,
    Probe,
    TokenRecord,
    encode,
    kept_rows,
    read_record,
    thinning_stride,
)

# ---------------------------------------------------------------- thinning


@pytest.mark.parametrize("n_evals", [1, 2, 63, 64, 65, 100, 128, 129, 1000, 5000])
def test_thinning_keeps_at_most_the_bound_first_last_and_an_even_grid(n_evals: int) -> None:
    every = 25
    steps = [i * every for i in range(n_evals)]
    kept = [steps[i] for i in kept_rows(steps, every)]
    assert len(kept) <= MAX_EVALUATIONS
    assert kept[0] == 0 and kept[-1] == steps[-1]
    if n_evals <= MAX_EVALUATIONS:
        assert kept == steps  # nothing thinned while it fits
        return
    assert len(kept) > MAX_EVALUATIONS // 2  # thinned no more than needed
    inner = np.diff(kept[:-1])  # the grid, before the last evaluation
    assert len(set(inner.tolist())) == 1, "the kept evaluations are evenly spaced"


def test_online_thinning_equals_thinning_the_whole_run() -> None:
    """A record grown one evaluation at a time keeps exactly what thinning all steps keeps."""
    every, steps = 5, [i * 5 for i in range(300)]
    record = make_record([[1.0, 2.0]], steps=[0], every=every)
    for step in steps[1:]:
        record = record.with_row(step, np.ones(2), np.ones(2), np.ones(2))
        assert record.n_rows <= MAX_EVALUATIONS
    assert record.steps.tolist() == [steps[i] for i in kept_rows(steps, every)]


def test_a_resumed_record_is_the_uninterrupted_one_once_past_the_stop() -> None:
    every, steps = 1, list(range(400))

    def grow(record: TokenRecord, upto: list[int]) -> TokenRecord:
        for step in upto:
            record = record.with_row(step, np.ones(2), np.ones(2), np.ones(2))
        return record

    start = make_record([[1.0, 1.0]], steps=[0], every=every)
    straight = grow(start, steps[1:])
    # Stopped at step 250 (the record has rows up to 250), resumed from a checkpoint at 170.
    cut = grow(start, steps[1:251]).until(170)
    assert cut.steps.max() <= 170
    resumed = grow(cut, steps[171:])
    assert resumed.steps.tolist() == straight.steps.tolist()


def test_stride_is_the_smallest_power_of_two_that_fits() -> None:
    assert thinning_stride(63 * 10, 10) == 1  # 64 evaluations: all fit
    assert thinning_stride(64 * 10, 10) == 2
    assert thinning_stride(10**6, 1) == 2**14
    with pytest.raises(ValueError):
        thinning_stride(10, 1, limit=1)


# ---------------------------------------------------------------- rows


def test_rows_by_step_and_a_repeated_step_replaces_its_row() -> None:
    record = make_record([[3.0, 2.0], [2.0, 1.0], [1.0, 0.5]], steps=[0, 10, 20])
    assert record.row(10) == 1
    with pytest.raises(StepNotRecorded, match="steps: 0, 10, 20"):
        record.row(15)
    again = record.with_row(10, np.array([9.0, 9.0]), np.zeros(2), np.ones(2))
    assert again.steps.tolist() == [0, 10]  # an evaluation again at 10: the later rows go too
    assert again.loss[-1].tolist() == [9.0, 9.0]
    assert record.until(10).steps.tolist() == [0, 10]
    assert record.heldout_means() == pytest.approx([2.5, 1.5, 0.75])


def test_ranks_and_counts_saturate_instead_of_wrapping() -> None:
    probe = make_probe(3)
    record = TokenRecord.empty(probe, 1, with_rank=True, with_drops=True)
    record = record.with_row(
        0, np.zeros(3), np.zeros(3), np.array([1, 70_000, np.nan]), np.array([0, 3, 1e9])
    )
    assert record.rank is not None and record.drops is not None
    assert record.rank[0].tolist() == [1, RANK_CAP, RANK_CAP]
    assert record.drops[0].tolist() == [0, 3, 65535]


# ---------------------------------------------------------------- the file


def test_file_round_trip_keeps_every_array_and_fact(tmp_path: Path) -> None:
    probe = make_probe(4)
    probe = Probe(**{**probe.__dict__, "texts": ["é", " x", "\n", '"q"']})
    record = make_record([[1.0, 2.0, 3.0, 4.0], [0.5, 2.5, np.nan, 4.0]], probe=probe)
    path = tmp_path / "tokens.safetensors"
    path.write_bytes(encode(record))
    back = read_record(path)
    assert back.probe.texts == ["é", " x", "\n", '"q"']
    assert back.probe.fingerprint() == probe.fingerprint()
    assert back.steps.tolist() == [0, 10] and back.every == 10
    assert back.loss.dtype == np.float32 and back.entropy.dtype == np.float16
    np.testing.assert_array_equal(back.loss, record.loss)
    assert back.rank is not None and back.drops is None
    assert back.probe.low_entropy.tolist() == [True, True, False, False]
    assert back.probe.entropy_split == 1.5 and back.probe.covers_eval


def test_missing_and_damaged_files_are_readable_errors(tmp_path: Path) -> None:
    with pytest.raises(NoTokenRecord):
        read_record(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(TokenRecordError, match="unreadable token record bad.safetensors"):
        read_record(bad)


def test_a_full_record_stays_within_its_documented_size(tmp_path: Path) -> None:
    """8,192 tokens x 64 evaluations: about 5 MB (docs/tokens.md), whatever the run's length."""
    n = MAX_PROBE_TOKENS
    probe = Probe(
        ids=np.arange(n, dtype=np.int32),
        texts=["ab"] * n,
        source=np.zeros(n, np.uint8),
        block=np.arange(n, dtype=np.int32) // 127,
        position=np.arange(n, dtype=np.int32) % 127 + 1,
        low_entropy=np.zeros(n, bool),
        start_entropy=np.ones(n, np.float16),
        entropy_split=1.0,
        covers_eval=True,
    )
    record = TokenRecord.empty(probe, 1)
    row = np.random.default_rng(0).random(n) * 8
    for step in range(200):
        record = record.with_row(step, row, row, row * 100)
    assert record.n_rows <= MAX_EVALUATIONS
    folder = RunFolder(tmp_path)
    folder.write_tokens(record)
    assert folder.tokens_path.stat().st_size < 5.5e6


# ---------------------------------------------------------------- the run folder


def test_run_folder_cuts_the_record_back_on_resume_and_drops_it_on_restart(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_tokens(make_record([[3.0], [2.0], [1.0]], steps=[0, 10, 20]))
    folder.truncate_tokens_after(10)
    assert folder.read_tokens().steps.tolist() == [0, 10]
    assert not list(tmp_path.glob(".tokens*"))  # no temporary file left behind
    RunFolder(tmp_path, writer=False).remove_tokens()  # only the main process writes
    assert folder.tokens_path.is_file()
    folder.remove_tokens()
    with pytest.raises(NoTokenRecord):
        folder.read_tokens()
    folder.truncate_tokens_after(5)  # nothing to cut: no error
    folder.tokens_path.write_bytes(b"garbage")
    folder.truncate_tokens_after(5)  # a damaged record is dropped, so the resumed run starts anew
    assert not folder.tokens_path.exists()


def test_evaluations_off_the_grid_still_respect_the_bound() -> None:
    steps = list(range(0, 300))  # a caller evaluating every step of a run set to every=10
    kept = kept_rows(steps, every=10)
    assert len(kept) <= MAX_EVALUATIONS and kept[0] == 0 and kept[-1] == 299
