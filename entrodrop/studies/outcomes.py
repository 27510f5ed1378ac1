"""A run's outcomes from its metric rows (metrics.jsonl): final and best held-out loss, rebound, forgetting."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from entrodrop.config import RunConfig
from entrodrop.metrics import (
    EVAL_LOSS,
    EVAL_LOSS_HIGH,
    GENERAL_LOSS,
    best_evaluation,
    headline,
    parse_benchmark,
)

# The outcome names a study summarises, in table order, with the plain words the tables use.
OUTCOMES: dict[str, str] = {
    "final_heldout": "final held-out loss",
    "best_heldout": "best held-out loss",
    "high_entropy_rebound": "high-entropy rebound",
    "final_general": "final general-text loss",
}
HELDOUT, HIGH_ENTROPY, GENERAL = EVAL_LOSS, EVAL_LOSS_HIGH, GENERAL_LOSS
# A rebound is a rise after the lowest high-entropy loss: it needs evaluations after that lowest
# one. A run with fewer ended while the loss still fell (or was too short to tell): its rebound
# is not measured (None), rather than a 0 that reads as "no rebound".
MIN_EVALS_AFTER_BEST = 1
# Outcomes a finished run may lack for a reason the tables give: the flag its outcomes carry
# (1.0 when it applies) and the words.
NOT_MEASURED = {
    "high_entropy_rebound": (
        "too_short_to_rebound",
        f"fewer than {MIN_EVALS_AFTER_BEST} evaluation after the lowest high-entropy loss: the "
        "run ended before it could rebound",
    ),
}

Outcomes = dict[str, float | None]
# A benchmark's outcome: the headline metric of a task (entrodrop.metrics.BENCH_HEADLINE) of the
# weights the run delivers, named bench:<task>:<metric>.
BENCH_OUTCOME = "bench:"


def bench_outcome(task: str, metric: str) -> str:
    return f"{BENCH_OUTCOME}{task}:{metric}"


def outcome_label(name: str) -> str:
    """The words a table uses for an outcome: a fixed one's, or '<task> <metric>'."""
    if name.startswith(BENCH_OUTCOME):
        task, _, metric = name[len(BENCH_OUTCOME) :].rpartition(":")
        return f"{task} {metric}"
    return OUTCOMES.get(name, name)


def outcome_names(outcomes: Iterable[Mapping[str, float | None]]) -> list[str]:
    """The fixed outcomes, then every benchmark outcome any run has, sorted (table order)."""
    bench = {k for o in outcomes for k in o if k.startswith(BENCH_OUTCOME)}
    return [*OUTCOMES, *sorted(bench)]


def benchmark_outcomes(rows: list[Mapping[str, Any]]) -> Outcomes:
    """Each benchmark task's headline metric, the value at the last step it was logged at."""
    tasks: dict[str, dict[str, float]] = {}
    for row in sorted(rows, key=lambda r: int(r["step"])):  # stable: the last write wins
        found = parse_benchmark(str(row.get("name", "")))
        if found is not None and isinstance(row.get("value"), int | float):
            tasks.setdefault(found[0], {})[found[1]] = float(row["value"])
    out: Outcomes = {}
    for task, values in tasks.items():
        metric = headline(values)
        if metric is not None:
            out[bench_outcome(task, metric)] = values[metric]
    return out


def series(rows: Iterable[Mapping[str, Any]], name: str) -> list[float]:
    """The values of one metric in step order (rows of equal step keep their file order)."""
    picked = [(int(r["step"]), float(r["value"])) for r in rows if r.get("name") == name]
    picked.sort(key=lambda sv: sv[0])  # stable: a repeated step keeps its last-written value last
    return [v for _, v in picked]


def rebound(values: list[float]) -> float | None:
    """The last value minus the lowest, once MIN_EVALS_AFTER_BEST evaluations follow the lowest."""
    if not values:
        return None
    best = values.index(min(values))
    if len(values) - 1 - best < MIN_EVALS_AFTER_BEST:
        return None
    return values[-1] - values[best]


def run_outcomes(rows: Iterable[Mapping[str, Any]]) -> Outcomes:
    """final_heldout (last eval/loss), best_heldout (min eval/loss, step 0 included),
    high_entropy_rebound (last minus min of eval/loss_high_entropy, see `rebound`), final_general
    (last general/loss); None where the run logged no such metric, or (the rebound) was too short
    to measure it, which its flag (NOT_MEASURED) says."""
    rows = list(rows)
    heldout, high, general = (series(rows, n) for n in (HELDOUT, HIGH_ENTROPY, GENERAL))
    high_rebound = rebound(high)
    flag = NOT_MEASURED["high_entropy_rebound"][0]
    return {
        "final_heldout": heldout[-1] if heldout else None,
        "best_heldout": min(heldout) if heldout else None,
        "high_entropy_rebound": high_rebound,
        "final_general": general[-1] if general else None,
        flag: 1.0 if high and high_rebound is None else 0.0,
        **benchmark_outcomes(rows),
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
