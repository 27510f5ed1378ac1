"""Token-level compare: b - a per token, sorted; seeds averaged with consistent signs marked."""

from __future__ import annotations

import math

import pytest
from records import make_probe, make_record

from entrodrop.tokens import ProbeMismatch, StepNotRecorded
from entrodrop.tokens.compare import compare_runs, compare_seeds
from entrodrop.tokens.view import runs_compare_view


def test_difference_of_final_losses_sorted_with_a_summary() -> None:
    a = make_record([[4.0, 4.0, 4.0, 4.0], [2.0, 3.0, 1.0, 2.0]])
    b = make_record([[4.0, 4.0, 4.0, 4.0], [1.0, 3.5, 1.0, math.nan]])
    out = compare_runs(a, b)
    assert out["steps"] == [10, 10]
    assert out["diff"] == [-1.0, 0.5, 0.0, None]
    assert out["order"] == [0, 2, 1, 3]  # b better first, missing last
    s = out["summary"]
    assert s["n"] == 3 and s["mean"] == pytest.approx(-1 / 6, abs=1e-4)
    assert s["fraction_lower_in_b"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["low"] == {"n": 2, "mean": -0.25, "fraction_lower_in_b": 0.5}  # tokens 0 and 1
    assert compare_runs(a, b, step=0)["diff"] == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(StepNotRecorded):
        compare_runs(a, b, step=5)


def test_runs_that_follow_other_tokens_are_refused_by_name() -> None:
    a = make_record([[1.0, 2.0]])
    b = make_record([[1.0, 2.0]], probe=make_probe(2, ids=[10, 99]))
    with pytest.raises(ProbeMismatch, match="r1 and r2 follow different tokens.*same model, data"):
        runs_compare_view(a, b, ["r1", "r2"])


def test_seeds_average_and_mark_consistent_tokens() -> None:
    a = [make_record([[3.0, 3.0, 3.0]]), make_record([[3.0, 3.0, 3.0]])]
    b = [make_record([[2.0, 3.5, 3.0]]), make_record([[2.5, 2.5, 3.0]])]
    out = compare_seeds([(0, a[0], b[0]), (1, a[1], b[1])], names=["none", "entrodrop"])
    assert out["seeds"] == [0, 1]
    assert out["steps"] == [{"seed": 0, "a": 0, "b": 0}, {"seed": 1, "a": 0, "b": 0}]
    assert out["mean_diff"] == [-0.75, 0.0, 0.0]
    assert out["consistent"] == [True, False, False]  # token 1 differs in sign; token 2 not at all
    assert out["n_consistent"] == 1 and out["order"][0] == 0
    assert [p["seed"] for p in out["per_seed"]] == [0, 1]
    other = make_record([[3.0, 3.0, 3.0]], probe=make_probe(3, ids=[1, 2, 3]))
    with pytest.raises(ProbeMismatch, match=r"entrodrop \(seed 1\)"):
        compare_seeds([(0, a[0], b[0]), (1, a[1], other)], names=["none", "entrodrop"])
