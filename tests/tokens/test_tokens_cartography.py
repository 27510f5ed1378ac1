"""Cartography on hand-made trajectories: each class, the thresholds, buckets and the rebound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from records import make_probe, make_record

from entrodrop.tokens.cartography import CLASS_IDS, Thresholds, cartography, classify

NAN = math.nan


def classes(columns: list[list[float]], thresholds: Thresholds = Thresholds()) -> list[str]:
    """The class of each trajectory (one list of losses per token, one value per evaluation)."""
    loss = np.asarray(columns, dtype=np.float64).T  # (R, P)
    return [CLASS_IDS[k] for k in classify(loss, thresholds)]


def test_each_class_from_its_trajectory() -> None:
    assert classes(
        [
            [4.0, 2.0, 1.0, 1.1],  # fell by 3, rose 0.1 after its best: learned and kept
            [4.0, 1.0, 2.0, 3.0],  # fell by 3, then rose 2.0 past its best: forgotten
            [4.0, 3.8, 3.7, 3.9],  # never fell by 0.5: never learned
            [0.05, 0.01, 0.02, 0.9],  # 0.05 <= 0.1 at step 0: known (precedence over the rise)
            [8.0, 9.0, 10.0, 11.0],  # only rose: never learned
        ]
    ) == ["learned", "forgotten", "never_learned", "known", "never_learned"]


def test_margins_are_strict_at_their_edges_and_parameters() -> None:
    # Exactly the gain learns; exactly the margin is not yet forgotten.
    assert classes([[3.0, 2.5, 3.0]]) == ["learned"]
    assert classes([[3.0, 2.5, 3.0]], Thresholds(forget_margin=0.4)) == ["forgotten"]
    assert classes([[3.0, 2.75, 2.75]]) == ["never_learned"]
    assert classes([[3.0, 2.75, 2.75]], Thresholds(learn_gain=0.25)) == ["learned"]
    assert classes([[0.2, 0.1, 0.1]]) == ["never_learned"]
    assert classes([[0.2, 0.1, 0.1]], Thresholds(known_loss=0.2)) == ["known"]


def test_missing_values_are_left_out_and_an_empty_trajectory_is_never_learned() -> None:
    # The first finite value is the start and the last finite one the final.
    assert classes([[NAN, 4.0, 1.0, NAN], [4.0, 1.0, NAN, 3.5], [NAN, NAN, NAN, NAN]]) == [
        "learned",
        "forgotten",
        "never_learned",
    ]


def test_counts_per_bucket_and_the_rebound_list() -> None:
    # Tokens 0-2 low-entropy, 3-5 high-entropy (the probe's default split).
    losses = [
        [4.0, 4.0, 0.05, 5.0, 5.0, 5.0],  # step 0
        [1.0, 1.0, 0.05, 1.0, 4.9, 2.0],  # step 10
        [1.2, 3.0, 0.05, 4.0, 4.9, 2.1],  # step 20
    ]
    record = make_record(losses, probe=make_probe(6))
    cart = cartography(record, top=10)
    assert [CLASS_IDS[k] for k in cart["class"]] == [
        "learned", "forgotten", "known", "forgotten", "never_learned", "learned",
    ]  # fmt: skip
    assert cart["counts"]["forgotten"] == {"low": 1, "high": 1, "all": 2}
    assert cart["counts"]["learned"] == {"low": 1, "high": 1, "all": 2}
    assert cart["counts"]["known"] == {"low": 1, "high": 0, "all": 1}
    assert sum(c["all"] for c in cart["counts"].values()) == 6
    rising = [(t["index"], t["rise"], t["best_step"]) for t in cart["top_rebound"]]
    # Token 3 rose 3.0 from its best at step 10, token 1 rose 2.0, then the small rises.
    assert rising[:2] == [(3, 3.0, 10), (1, 2.0, 10)]
    assert [i for i, _, _ in rising] == [3, 1, 0, 5]  # only tokens that rose at all
    assert rising[2][1] == pytest.approx(0.2, abs=1e-4)
    assert (
        cart["top_rebound"][0]["bucket"] == "high"
        and cart["top_rebound"][0]["class"] == "forgotten"
    )
    assert cart["best_step"] == [10, 10, 0, 10, 10, 10]
    assert cart["best_loss"][3] == 1.0
    assert cartography(record, top=1)["top_rebound"][0]["index"] == 3
    assert cart["thresholds"] == {"known_loss": 0.1, "learn_gain": 0.5, "forget_margin": 0.5}
