"""Cartography of a run's tokens: which were learned and kept, learned then forgotten, never
learned, or already known at step 0, counted per entropy bucket, and which make the rebound.

The classes, from each token's loss trajectory L_0 .. L_final over the recorded evaluations
(L_best its lowest, non-finite values left out), in this order of precedence:

- ``known``: already known at step 0: L_0 <= known_loss (default 0.1 nats: p >= 0.90);
- ``never_learned``: L_0 - L_best < learn_gain (default 0.5 nats: its probability never rose by
  more than x1.65);
- ``forgotten``: learned, then L_final - L_best > forget_margin (default 0.5 nats);
- ``learned``: learned and kept.

A token with no finite loss at all counts as never learned. Buckets split the tokens by the
starting model's entropy at the training median, as the held-out curves do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from entrodrop.tokens.record import TokenRecord

# The classes in display order: id, label, what it means. The pages and the CLI show these.
CLASSES: list[dict[str, str]] = [
    {"id": "learned", "label": "learned and kept", "help": "its loss fell and stayed down"},
    {
        "id": "forgotten",
        "label": "learned then forgotten",
        "help": "its loss fell, then rose past the margin after its best",
    },
    {"id": "never_learned", "label": "never learned", "help": "its loss never fell by the gain"},
    {"id": "known", "label": "already known at step 0", "help": "low loss before training"},
]
CLASS_IDS = [c["id"] for c in CLASSES]
BUCKETS: list[dict[str, str]] = [
    {"id": "low", "label": "low-entropy", "help": "starting-model entropy <= the training median"},
    {"id": "high", "label": "high-entropy", "help": "starting-model entropy above it"},
]


@dataclass(frozen=True)
class Thresholds:
    """The cartography's margins, in nats (defaults above; every one a parameter)."""

    known_loss: float = 0.1
    learn_gain: float = 0.5
    forget_margin: float = 0.5


@dataclass
class Trajectories:
    """Per-token facts of a (R, P) loss matrix: start, best (and its row), final."""

    start: np.ndarray  # (P,) first finite loss
    best: np.ndarray  # (P,)
    best_row: np.ndarray  # (P,) int
    final: np.ndarray  # (P,) last finite loss


def trajectories(loss: np.ndarray) -> Trajectories:
    """Start, best and final loss of each column of loss (R, P); NaN where a column has none."""
    loss = np.asarray(loss, dtype=np.float64)
    r, p = loss.shape
    finite = np.isfinite(loss)
    has = finite.any(axis=0)
    first = np.argmax(finite, axis=0)
    last = r - 1 - np.argmax(finite[::-1], axis=0)
    cols = np.arange(p)
    masked = np.where(finite, loss, np.inf)
    best_row = np.argmin(masked, axis=0) if r else np.zeros(p, dtype=int)
    pick = lambda rows: np.where(has, loss[rows, cols], np.nan) if r else np.full(p, np.nan)  # noqa: E731
    return Trajectories(pick(first), pick(best_row), best_row, pick(last))


def classify(loss: np.ndarray, thresholds: Thresholds = Thresholds()) -> np.ndarray:
    """Each token's class (P,) as an index into CLASS_IDS, from its losses loss (R, P)."""
    t = trajectories(loss)
    with np.errstate(invalid="ignore"):
        known = t.start <= thresholds.known_loss
        learned = (t.start - t.best) >= thresholds.learn_gain
        forgotten = learned & ((t.final - t.best) > thresholds.forget_margin)
    out = np.full(t.start.shape, CLASS_IDS.index("never_learned"), dtype=np.int8)
    out[learned] = CLASS_IDS.index("learned")
    out[forgotten] = CLASS_IDS.index("forgotten")
    out[known] = CLASS_IDS.index("known")
    return out


def _token(record: TokenRecord, t: Trajectories, i: int, classes: np.ndarray) -> dict[str, Any]:
    return {
        "index": i,
        "text": record.probe.texts[i],
        "rise": rounded(float(t.final[i] - t.best[i])),
        "best_step": int(record.steps[t.best_row[i]]),
        "best_loss": rounded(float(t.best[i])),
        "final_loss": rounded(float(t.final[i])),
        "start_loss": rounded(float(t.start[i])),
        "class": CLASS_IDS[classes[i]],
        "bucket": "low" if record.probe.low_entropy[i] else "high",
    }


def cartography(
    record: TokenRecord, thresholds: Thresholds = Thresholds(), top: int = 20
) -> dict[str, Any]:
    """The record's cartography: each token's class, the counts per class and entropy bucket,
    and the `top` tokens that rose most from their best to the final evaluation (the rebound).

    ``class`` (P,) holds indices into ``classes``; ``best_loss``/``best_step`` (P,) are aligned to
    the tokens too, so a page can colour "change since best" without recomputing it.
    """
    classes = classify(record.loss, thresholds)
    t = trajectories(record.loss)
    low = record.probe.low_entropy.astype(bool)
    counts = {
        c: {
            "low": int(((classes == k) & low).sum()),
            "high": int(((classes == k) & ~low).sum()),
            "all": int((classes == k).sum()),
        }
        for k, c in enumerate(CLASS_IDS)
    }
    rise = np.nan_to_num(t.final - t.best, nan=-np.inf)
    order = np.argsort(-rise, kind="stable")[: max(0, top)]
    steps = record.steps
    return {
        "classes": CLASSES,
        "buckets": BUCKETS,
        "thresholds": asdict(thresholds),
        "class": classes.tolist(),
        "counts": counts,
        "best_loss": [rounded(x) for x in t.best.tolist()],
        "best_step": [
            int(steps[i]) if np.isfinite(b) else None
            for i, b in zip(t.best_row.tolist(), t.best.tolist(), strict=True)
        ],
        "top_rebound": [_token(record, t, int(i), classes) for i in order if rise[i] > 0],
    }


def rounded(x: float, digits: int = 4) -> float | None:
    """A JSON-ready number: rounded (the record keeps ~4 significant digits), None if not finite."""
    return round(x, digits) if np.isfinite(x) else None
