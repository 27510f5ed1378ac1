"""A run's outcomes from its metric rows (metrics.jsonl): final and best held-out loss, rebound, forgetting."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from entrodrop.config import RunConfig
from entrodrop.metrics import EVAL_LOSS, EVAL_LOSS_HIGH, GENERAL_LOSS, best_evaluation

# The outcome names a study summarises, in table order, with the plain words the tables use.
OUTCOMES: dict[str, str] = {
    "final_heldout": "final held-out loss",
    "best_heldout": "best held-out loss",
    "high_entropy_rebound": "high-entropy rebound",
    "final_general": "final general-text loss",
}
HELDOUT, HIGH_ENTROPY, GENERAL = EVAL_LOSS, EVAL_LOSS_HIGH, GENERAL_LOSS

Outcomes = dict[str, float | None]


def series(rows: Iterable[Mapping[str, Any]], name: str) -> list[float]:
    """The values of one metric in step order (rows of equal step keep their file order)."""
    picked = [(int(r["step"]), float(r["value"])) for r in rows if r.get("name") == name]
    picked.sort(key=lambda sv: sv[0])  # stable: a repeated step keeps its last-written value last
    return [v for _, v in picked]


def run_outcomes(rows: Iterable[Mapping[str, Any]]) -> Outcomes:
    """final_heldout (last eval/loss), best_heldout (min eval/loss, step 0 included),
    high_entropy_rebound (last minus min of eval/loss_high_entropy), final_general (last
    general/loss); None where the run logged no such metric."""
    rows = list(rows)
    heldout, high, general = (series(rows, n) for n in (HELDOUT, HIGH_ENTROPY, GENERAL))
    return {
        "final_heldout": heldout[-1] if heldout else None,
        "best_heldout": min(heldout) if heldout else None,
        "high_entropy_rebound": high[-1] - min(high) if high else None,
        "final_general": general[-1] if general else None,
    }


def delivered_rows(rows: Iterable[Mapping[str, Any]], config: RunConfig) -> list[Mapping[str, Any]]:
    """The rows of the model a run delivers: with early stopping on, its best checkpoint (the
    rows up to its best evaluation by config.best_metric); otherwise the whole run."""
    rows = list(rows)
    if config.early_stopping_patience is None:
        return rows
    best = best_evaluation(rows, config.best_metric)
    return rows if best is None else [r for r in rows if int(r["step"]) <= best.step]


def judged_outcomes(rows: Iterable[Mapping[str, Any]], config: RunConfig) -> Outcomes:
    """A study run's outcomes as the run is judged: a run with early stopping by its best
    checkpoint (its "final" values are those of its best evaluation), any other by its end."""
    return run_outcomes(delivered_rows(rows, config))
