"""Curves per variant: the mean over seeds of a metric at each evaluation, with a 95% band."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from entrodrop.studies.stats import RunKey, mean_ci

Rows = Sequence[Mapping[str, Any]]


def variant_curve(runs: Sequence[Rows], name: str) -> dict[str, list[Any]]:
    """{"step", "epoch", "mean", "lo", "hi", "n"} of one metric over one variant's runs.

    Runs are aligned by step (a study's runs share the evaluation schedule); the band is the
    mean ± its 95% CI where at least two seeds have the step, the mean alone otherwise.
    """
    by_step: dict[int, list[float]] = {}
    epochs: dict[int, float] = {}
    for rows in runs:
        last: dict[int, float] = {}
        for r in rows:
            if r.get("name") == name:
                last[int(r["step"])] = float(r["value"])  # a repeated step: its last value
                epochs[int(r["step"])] = float(r.get("epoch") or 0.0)
        for step, value in last.items():
            by_step.setdefault(step, []).append(value)
    curve: dict[str, list[Any]] = {k: [] for k in ("step", "epoch", "mean", "lo", "hi", "n")}
    for step in sorted(by_step):
        stat = mean_ci(by_step[step])
        half = stat["ci95"] or 0.0
        for key, value in (
            ("step", step),
            ("epoch", epochs[step]),
            ("mean", stat["mean"]),
            ("lo", stat["mean"] - half),
            ("hi", stat["mean"] + half),
            ("n", stat["n"]),
        ):
            curve[key].append(value)
    return curve


def study_curves(
    rows_by_run: Mapping[RunKey, Rows], labels: Sequence[str], names: Sequence[str]
) -> dict[str, dict[str, dict[str, list[Any]]]]:
    """variant -> metric -> curve, for the variants in order."""
    out: dict[str, dict[str, dict[str, list[Any]]]] = {}
    for label in labels:
        runs = [rows for (variant, _), rows in sorted(rows_by_run.items()) if variant == label]
        out[label] = {name: variant_curve(runs, name) for name in names}
    return out
