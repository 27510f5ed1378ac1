"""The metric vocabulary: every metric a run writes, with its label, unit, scale and direction.

Writers (the training callbacks, the drop statistics, the diagnostics) and readers (study
outcomes, storage, the pages' facts) import the names from here; no other module spells them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """One metric of metrics.jsonl: its name, how a person reads it, and which way is better."""

    name: str
    label: str  # legends and tables
    unit: str  # "nats", "" (a fraction or a rate)
    log: bool  # drawn on a log scale by default
    lower_is_better: bool | None  # None: neither way is better (a schedule, a statistic)


# ---------------------------------------------------------------- the names

TRAIN_LOSS = "train/loss"
LEARNING_RATE = "train/learning_rate"
GRAD_NORM = "train/grad_norm"
EVAL_LOSS = "eval/loss"
EVAL_LOSS_LOW = "eval/loss_low_entropy"
EVAL_LOSS_HIGH = "eval/loss_high_entropy"
GENERAL_LOSS = "general/loss"
RATE_SCHEDULED = "drop/rate_scheduled"
FRACTION_REALISED = "drop/fraction_realised"
ENTROPY_DROPPED = "drop/entropy_dropped"
ENTROPY_KEPT = "drop/entropy_kept"

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(TRAIN_LOSS, "train", "nats", True, True),
        Metric(EVAL_LOSS, "held-out: all tokens", "nats", True, True),
        Metric(EVAL_LOSS_LOW, "held-out: low-entropy", "nats", True, True),
        Metric(EVAL_LOSS_HIGH, "held-out: high-entropy", "nats", True, True),
        Metric(GENERAL_LOSS, "general text", "nats", True, True),
        Metric(RATE_SCHEDULED, "scheduled r(s)", "", False, None),
        Metric(FRACTION_REALISED, "realised fraction (of all trained tokens)", "", False, None),
        Metric(ENTROPY_DROPPED, "dropped tokens", "nats", False, None),
        Metric(ENTROPY_KEPT, "kept tokens", "nats", False, None),
        Metric(LEARNING_RATE, "learning rate", "", False, None),
        Metric(GRAD_NORM, "gradient norm", "", True, None),
    )
}

# The Trainer's own log keys, renamed to ours.
TRAINER_NAMES = {"loss": TRAIN_LOSS, "learning_rate": LEARNING_RATE, "grad_norm": GRAD_NORM}
# What metrics.jsonl keeps of a Trainer log dict: names under these prefixes.
PREFIXES = ("train/", "eval/", "general/", "drop/", "bench/")
# What one evaluation writes (DESIGN section 2), in the order the diagnostics compute them.
EVALUATION = (EVAL_LOSS, EVAL_LOSS_LOW, EVAL_LOSS_HIGH, GENERAL_LOSS)
# The metrics a run can be judged by (best checkpoint, early stopping): evaluation losses.
SELECTABLE = EVALUATION
# The held-out curves compare and the runs list show, in column order.
COMPARED = (EVAL_LOSS, EVAL_LOSS_LOW, EVAL_LOSS_HIGH, GENERAL_LOSS, TRAIN_LOSS)
# Deterministic series (a formula of the step): never smoothed on a chart.
DETERMINISTIC = (RATE_SCHEDULED, LEARNING_RATE)


# Downstream benchmarks (lm-evaluation-harness, after training): one name per task and metric,
# `bench/<task>/<metric>`, logged at the step of the weights scored (the final step, and the best
# checkpoint's step where one was kept), so a run judged by its best checkpoint gets its values.
BENCH_PREFIX = "bench/"
# The metric a task is read by, the first it reports (studies and compare show that one).
BENCH_HEADLINE = ("acc", "exact_match", "bits_per_byte", "word_perplexity")
BENCH_LOWER_BETTER = ("bits_per_byte", "word_perplexity", "byte_perplexity")


def benchmark_name(task: str, metric: str) -> str:
    """The metric name of a task's metric: bench/<task>/<metric>."""
    return f"{BENCH_PREFIX}{task}/{metric}"


def parse_benchmark(name: str) -> tuple[str, str] | None:
    """(task, metric) of a benchmark metric name, else None."""
    if not name.startswith(BENCH_PREFIX):
        return None
    task, sep, metric = name[len(BENCH_PREFIX) :].rpartition("/")
    return (task, metric) if sep and task and metric else None


def headline(metrics: Mapping[str, Any]) -> str | None:
    """The metric a task's results are read by: the first of BENCH_HEADLINE it has."""
    return next((m for m in BENCH_HEADLINE if isinstance(metrics.get(m), int | float)), None)


def label(name: str) -> str:
    """A metric's label, or its name for one this vocabulary does not know."""
    metric = METRICS.get(name)
    if metric is None and (bench := parse_benchmark(name)) is not None:
        return f"{bench[0]}: {bench[1]}"
    return metric.label if metric is not None else name


def lower_is_better(name: str) -> bool:
    """Whether a lower value of a selectable metric (or a benchmark's) is better (ValueError for
    any other)."""
    if (bench := parse_benchmark(name)) is not None:
        return bench[1] in BENCH_LOWER_BETTER
    metric = METRICS.get(name)
    if metric is None or metric.lower_is_better is None:
        raise ValueError(f"{name!r} is not a metric a run can be judged by")
    return metric.lower_is_better


def improves(name: str, value: float, best: float | None, threshold: float = 0.0) -> bool:
    """Whether `value` of metric `name` beats `best` by more than `threshold` (None: always)."""
    if best is None:
        return True
    gain = best - value if lower_is_better(name) else value - best
    return gain > threshold


# "Best" is chosen among the evaluations made after training began (step >= 1): every one of
# them has a checkpoint where checkpoints are saved; the starting model's evaluation (step 0)
# is the baseline, not a candidate. transformers' Trainer makes the same choice (it tracks
# best_metric / best_global_step from the evaluations inside train()).
FIRST_CANDIDATE_STEP = 1


def trainer_key(name: str) -> str:
    """The key transformers' Trainer reads a metric under: metric_for_best_model and
    EarlyStoppingCallback look it up in evaluate()'s dict as "eval_" + the name."""
    return f"eval_{name}"


@dataclass(frozen=True)
class Best:
    """The best evaluation of a run: its step, the judged metric's value, every eval value then."""

    step: int
    value: float
    metrics: dict[str, float]


def best_evaluation(rows: Iterable[Mapping[str, Any]], name: str) -> Best | None:
    """The run's best evaluation by metric `name` from its metric rows (metrics.jsonl), or None.

    The one definition the training process (live) and every reader (resume, studies) share:
    steps from FIRST_CANDIDATE_STEP on, in step order; a step is the new best when it
    :func:`improves` on the best so far (strictly), so a tie keeps the earlier step.
    """
    lower_is_better(name)  # ValueError for a metric a run cannot be judged by
    by_step: dict[int, dict[str, float]] = {}
    for row in rows:
        metric, value = row.get("name"), row.get("value")
        if metric in SELECTABLE and isinstance(value, int | float):
            by_step.setdefault(int(row["step"]), {})[str(metric)] = float(value)
    best: Best | None = None
    for step in sorted(by_step):
        value = by_step[step].get(name)
        if step < FIRST_CANDIDATE_STEP or value is None:
            continue
        if improves(name, value, None if best is None else best.value):
            best = Best(step, value, dict(by_step[step]))
    return best


def vocabulary() -> dict[str, dict[str, Any]]:
    """Every metric as plain data, for the pages' facts and the API."""
    return {name: asdict(metric) for name, metric in METRICS.items()}
