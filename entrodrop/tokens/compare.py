"""Token-level compare: where two runs (or a study's two variants over seeds) differ, token by token.

Only records that follow the same tokens compare (same model, data and evaluation settings): the
probes' fingerprints must be equal, else ProbeMismatch says why. The difference is b - a of each
token's loss at the final evaluation (or at a chosen step): negative where b predicts it better.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from entrodrop.tokens import ProbeMismatch, TokenRecordError
from entrodrop.tokens.cartography import rounded
from entrodrop.tokens.record import TokenRecord


def check_same_probe(records: Sequence[TokenRecord], names: Sequence[str]) -> None:
    """Refuse records that follow different tokens, naming the first one that differs."""
    first = records[0].probe.fingerprint()
    for record, name in zip(records[1:], names[1:], strict=True):
        if record.probe.fingerprint() != first:
            raise ProbeMismatch(
                f"{names[0]} and {name} follow different tokens (probe {first} vs "
                f"{record.probe.fingerprint()}): a token-level compare needs runs on the same "
                "model, data and evaluation settings (held-out data, seq_len, max_eval_tokens, "
                "recorded general and training tokens)"
            )


def loss_at(record: TokenRecord, step: int | None) -> tuple[int, np.ndarray]:
    """(step, (P,) loss) at `step`, or at the record's last evaluation."""
    if not record.n_rows:
        raise TokenRecordError("the token record has no evaluation yet")
    row = record.n_rows - 1 if step is None else record.row(step)
    return int(record.steps[row]), record.loss[row].astype(np.float64)


def _stats(diff: np.ndarray) -> dict[str, Any]:
    finite = diff[np.isfinite(diff)]
    n = int(finite.size)
    return {
        "n": n,
        "mean": rounded(float(finite.mean())) if n else None,
        "fraction_lower_in_b": rounded(float((finite < 0).mean())) if n else None,
    }


def summary(diff: np.ndarray, low: np.ndarray) -> dict[str, Any]:
    """Mean difference and the share of tokens b predicts better, overall and per bucket."""
    return {**_stats(diff), "low": _stats(diff[low]), "high": _stats(diff[~low])}


def sorted_order(diff: np.ndarray) -> list[int]:
    """Token indices from the largest drop in loss (b better) to the largest rise; NaN last."""
    return np.argsort(np.nan_to_num(diff, nan=np.inf), kind="stable").tolist()


def compare_runs(
    a: TokenRecord, b: TokenRecord, step: int | None = None, names: Sequence[str] = ("a", "b")
) -> dict[str, Any]:
    """b - a per token at the final evaluation (or `step`), sorted, with a summary."""
    check_same_probe([a, b], names)
    step_a, loss_a = loss_at(a, step)
    step_b, loss_b = loss_at(b, step)
    diff = loss_b - loss_a
    low = a.probe.low_entropy.astype(bool)
    return {
        "steps": [step_a, step_b],
        "loss_a": [rounded(x) for x in loss_a.tolist()],
        "loss_b": [rounded(x) for x in loss_b.tolist()],
        "diff": [rounded(x) for x in diff.tolist()],
        "order": sorted_order(diff),
        "summary": summary(diff, low),
    }


def compare_seeds(
    pairs: Sequence[tuple[int, TokenRecord, TokenRecord]],
    step: int | None = None,
    names: Sequence[str] = ("a", "b"),
) -> dict[str, Any]:
    """Per seed, b - a per token; their mean over seeds, and which tokens differ the same way in
    every seed (``consistent``: all differences of one sign, none zero or missing)."""
    if not pairs:
        raise TokenRecordError("no seed has a token record for both variants")
    records = [r for _, a, b in pairs for r in (a, b)]
    check_same_probe(
        records, [f"{names[i % 2]} (seed {pairs[i // 2][0]})" for i in range(len(records))]
    )
    diffs, steps = [], []
    for seed, a, b in pairs:
        step_a, loss_a = loss_at(a, step)
        step_b, loss_b = loss_at(b, step)
        diffs.append(loss_b - loss_a)
        steps.append({"seed": seed, "a": step_a, "b": step_b})
    d = np.stack(diffs)  # (S, P)
    with np.errstate(invalid="ignore"):
        consistent = np.all(d > 0, axis=0) | np.all(d < 0, axis=0)
        mean = d.mean(axis=0)
    low = pairs[0][1].probe.low_entropy.astype(bool)
    per_seed = [
        {"seed": seed, **summary(diff, low)}
        for (seed, _, _), diff in zip(pairs, diffs, strict=True)
    ]
    return {
        "seeds": [seed for seed, _, _ in pairs],
        "steps": steps,
        "mean_diff": [rounded(x) for x in mean.tolist()],
        "consistent": consistent.tolist(),
        "n_consistent": int(consistent.sum()),
        "order": sorted_order(mean),
        "summary": summary(mean, low),
        "per_seed": per_seed,
    }
