"""Statistics over seeds: mean and 95% confidence interval (Student t), paired differences, a summary."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from entrodrop.studies.config import Comparison
from entrodrop.studies.outcomes import (
    BENCH_OUTCOME,
    NOT_MEASURED,
    Outcomes,
    outcome_label,
    outcome_names,
)

# t_{0.975, df} for df = 1..30 (two-sided 95%); scipy is not a dependency for 30 numbers.
T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
Z975 = 1.959964

RunKey = tuple[str, int]  # (variant label, seed)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with df degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError("Student's t needs df >= 1")
    if df <= len(T975):
        return T975[df - 1]
    z = Z975  # Cornish-Fisher expansion: within 1e-4 of the exact value beyond df = 30
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """{"mean", "ci95", "n"}: ci95 is the half-width t * s / sqrt(n), None when n < 2."""
    n = len(values)
    if n == 0:
        return {"mean": None, "ci95": None, "n": 0}
    mean = math.fsum(values) / n
    if n < 2:
        return {"mean": mean, "ci95": None, "n": n}
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return {"mean": mean, "ci95": t975(n - 1) * sd / math.sqrt(n), "n": n}


def excludes_zero(stat: Mapping[str, Any]) -> bool | None:
    """Whether the 95% interval lies entirely on one side of zero; None without an interval
    (n < 2): no claim either way."""
    mean, ci = stat.get("mean"), stat.get("ci95")
    if mean is None or ci is None:
        return None
    return abs(mean) > ci


def _values(outcomes: Mapping[RunKey, Outcomes], label: str, name: str) -> list[float]:
    return [
        v
        for (variant, _), o in sorted(outcomes.items(), key=lambda kv: kv[0][1])
        if variant == label and (v := o.get(name)) is not None
    ]


def variant_rows(
    outcomes: Mapping[RunKey, Outcomes], labels: Sequence[str]
) -> list[dict[str, Any]]:
    """Per variant: n (runs with outcomes) and mean ± ci95 of each outcome over its seeds."""
    rows = []
    for label in labels:
        row: dict[str, Any] = {
            "variant": label,
            "n": sum(1 for (variant, _) in outcomes if variant == label),
        }
        for name in outcome_names(outcomes.values()):
            row[name] = mean_ci(_values(outcomes, label, name))
            if name in NOT_MEASURED:  # say why some runs have none, rather than a mean of fewer
                flag, why = NOT_MEASURED[name]
                short = sum(1 for (v, _), o in outcomes.items() if v == label and o.get(flag))
                if short:
                    row[name]["why"] = f"not measured in {short} of {row['n']}: {why}"
        rows.append(row)
    return rows


def paired_row(
    outcomes: Mapping[RunKey, Outcomes], comparison: Comparison, name: str = "final_heldout"
) -> dict[str, Any]:
    """Per-seed differences variant - reference of one outcome, over the seeds both have."""
    mine = {seed: o.get(name) for (v, seed), o in outcomes.items() if v == comparison.variant}
    theirs = {seed: o.get(name) for (v, seed), o in outcomes.items() if v == comparison.vs_label}
    seeds = sorted(s for s in mine if mine[s] is not None and theirs.get(s) is not None)
    diffs = [mine[s] - theirs[s] for s in seeds]  # type: ignore[operator]
    stat = mean_ci(diffs)
    return {
        "variant": comparison.variant,
        "vs": comparison.vs,
        "vs_label": comparison.vs_label,
        "seeds": seeds,
        f"{name}_diff": stat,
        "excludes_zero": excludes_zero(stat),
    }


def paired_rows(outcomes: Mapping[RunKey, Outcomes], comparison: Comparison) -> dict[str, Any]:
    """The final held-out difference (whose interval the readings judge), and each
    benchmark's difference beside it (`bench:<task>:<metric>_diff`)."""
    row = paired_row(outcomes, comparison)
    for name in outcome_names(outcomes.values()):
        if name.startswith(BENCH_OUTCOME):
            bench = paired_row(outcomes, comparison, name)
            row[f"{name}_diff"] = bench[f"{name}_diff"] | {"excludes_zero": bench["excludes_zero"]}
    return row


def summary(
    outcomes: Mapping[RunKey, Outcomes],
    labels: Sequence[str],
    comparisons: Sequence[Comparison],
) -> dict[str, Any]:
    """{"summary": per-variant rows, "paired": final held-out differences vs none / random /
    early_stop (and each benchmark's), "outcomes": every outcome's name and label in order}."""
    names = outcome_names(outcomes.values())
    return {
        "summary": variant_rows(outcomes, labels),
        "paired": [paired_rows(outcomes, c) for c in comparisons],
        "outcomes": [{"name": n, "label": outcome_label(n)} for n in names],
    }
