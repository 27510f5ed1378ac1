"""The policy: schedules, selection, seeded drops, drop modes, the random ablation."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from entrodrop import EntroDropConfig, apply_drops, drop_rate, select_drops, select_random_drops
from entrodrop.policy import IGNORE_INDEX, candidate_mask, entropy_threshold


def _entropies(b: int = 4, t: int = 64, seed: int = 1234) -> torch.Tensor:
    # Not seed 0: the policy's default generator is seeded with 0 and would draw the same numbers.
    g = torch.Generator().manual_seed(seed)
    ent = torch.rand((b, t), generator=g) * 5
    ent[:, 0] = math.nan  # the first token never has an entropy
    return ent


def test_sigmoid_schedule_shape() -> None:
    cfg = EntroDropConfig(schedule="sigmoid", rate_max=0.6, steepness=10, midpoint=0.5)
    values = [drop_rate(s / 20, cfg) for s in range(21)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False))  # strictly increasing
    assert values[0] < 0.01 * 0.6 * 2  # masks little early
    assert drop_rate(0.5, cfg) == pytest.approx(0.3)  # half of rate_max at the midpoint
    assert values[-1] > 0.99 * 0.6 and values[-1] <= 0.6
    # symmetric around the midpoint
    assert drop_rate(0.3, cfg) + drop_rate(0.7, cfg) == pytest.approx(0.6)


def test_other_schedules() -> None:
    lin = EntroDropConfig(schedule="linear", rate_max=0.4)
    cos = EntroDropConfig(schedule="cosine", rate_max=0.4)
    const = EntroDropConfig(schedule="constant", rate_max=0.4)
    assert drop_rate(0.0, lin) == 0 and drop_rate(0.25, lin) == pytest.approx(0.1)
    assert drop_rate(1.0, lin) == pytest.approx(0.4)
    assert drop_rate(0.0, cos) == pytest.approx(0) and drop_rate(0.5, cos) == pytest.approx(0.2)
    assert drop_rate(1.0, cos) == pytest.approx(0.4)
    assert {drop_rate(s, const) for s in (0.0, 0.3, 1.0)} == {0.4}
    # progress is clamped into [0, 1]; NaN is refused
    assert drop_rate(2.0, lin) == pytest.approx(0.4) and drop_rate(-1, lin) == 0
    with pytest.raises(ValueError):
        drop_rate(math.nan, lin)


def test_quantile_threshold_matches_definition() -> None:
    ent = _entropies()
    cfg = EntroDropConfig(selection="quantile", quantile=0.3)
    tau = entropy_threshold(ent, cfg)
    finite = ent[torch.isfinite(ent)]
    frac = float((finite <= tau).float().mean())
    assert abs(frac - 0.3) < 1.0 / finite.numel() + 1e-6
    assert entropy_threshold(ent, EntroDropConfig(selection="threshold", threshold=1.5)) == 1.5


def test_candidates_never_first_token_or_nan() -> None:
    ent = _entropies()
    ent[:, 0] = 0.0  # even a zero entropy at position 0 is not a candidate
    ent[1, 10:] = math.nan  # padding
    cand = candidate_mask(ent, tau=10.0)
    assert not cand[:, 0].any()
    assert not cand[1, 10:].any()
    drops = select_drops(
        ent,
        EntroDropConfig(selection="threshold", threshold=10.0, rate_max=1.0, schedule="constant"),
        1.0,
    )
    assert not drops[:, 0].any() and drops[0, 1:].all()


def test_seeded_drops_are_reproducible() -> None:
    ent = _entropies()
    cfg = EntroDropConfig(rate_max=0.5, seed=7)
    a = select_drops(ent, cfg, 0.8, torch.Generator().manual_seed(7))
    b = select_drops(ent, cfg, 0.8)  # default generator is seeded with config.seed
    c = select_drops(ent, cfg, 0.8, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_drops_are_candidates_at_the_scheduled_rate() -> None:
    ent = _entropies(b=64, t=128)
    cfg = EntroDropConfig(quantile=0.5, rate_max=0.8, schedule="constant")
    drops = select_drops(ent, cfg, 0.5)
    tau = entropy_threshold(ent, cfg)
    cand = candidate_mask(ent, tau)
    assert not (drops & ~cand).any()
    realised = drops.sum() / cand.sum()
    assert abs(float(realised) - 0.8) < 0.03


def test_random_ablation_has_same_expected_count() -> None:
    ent = _entropies(b=64, t=128)
    cfg = EntroDropConfig(quantile=0.3, rate_max=0.6, schedule="constant")
    n_entro = float(select_drops(ent, cfg, 1.0).sum())
    counts = [
        float(select_random_drops(ent, cfg, 1.0, torch.Generator().manual_seed(s)).sum())
        for s in range(5)
    ]
    mean_random = sum(counts) / len(counts)
    assert abs(mean_random - n_entro) / n_entro < 0.05
    rnd = select_random_drops(ent, cfg, 1.0)
    # not restricted to low-entropy tokens
    tau = entropy_threshold(ent, cfg)
    assert (rnd & (ent > tau)).any()
    assert not rnd[:, 0].any()


def test_apply_drops_modes() -> None:
    ids = torch.arange(10).view(1, 10)
    labels = ids.clone()
    drops = torch.zeros_like(ids, dtype=torch.bool)
    drops[0, [2, 5]] = True
    new_ids, new_labels = apply_drops(ids, labels, drops, "input", drop_token_id=99)
    assert new_ids[0, 2] == 99 and new_ids[0, 5] == 99 and torch.equal(new_labels, labels)
    new_ids, new_labels = apply_drops(ids, labels, drops, "loss", drop_token_id=99)
    assert torch.equal(new_ids, ids) and new_labels[0, 2] == IGNORE_INDEX and new_labels[0, 3] == 3
    new_ids, new_labels = apply_drops(ids, labels, drops, "both", drop_token_id=99)
    assert new_ids[0, 5] == 99 and new_labels[0, 5] == IGNORE_INDEX
    with pytest.raises(ValueError):
        apply_drops(ids, labels, drops, "sideways", drop_token_id=99)


@pytest.mark.parametrize(
    "bad",
    [
        {"quantile": 0.0},
        {"quantile": 1.0},
        {"rate_max": 1.5},
        {"rate_max": float("nan")},
        {"steepness": -1},
        {"selection": "threshold"},
        {"schedule": "exponential"},
        {"drop_mode": "everything"},
        {"unknown_key": 1},
    ],
)
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValidationError):
        EntroDropConfig(**bad)
