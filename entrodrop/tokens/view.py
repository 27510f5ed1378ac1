"""The JSON and CSV of token records: what the API's token endpoints and `entrodrop tokens` print.

Every per-token array is aligned to ``tokens``; per-step arrays are lists of rows aligned to
``steps``. Numbers are rounded to what the record holds (loss 4 decimals, entropy 3), non-finite
values are null. docs/tokens.md describes each key.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from entrodrop import metrics
from entrodrop.tokens import MAX_EVALUATIONS, MAX_PROBE_TOKENS
from entrodrop.tokens.cartography import BUCKETS, CLASS_IDS, Thresholds, cartography, rounded
from entrodrop.tokens.compare import compare_runs, compare_seeds
from entrodrop.tokens.record import SOURCE_LABELS, SOURCES, Probe, TokenRecord

# What a page can colour the tokens by (one place: the pages receive it). fixed_max: the top of
# the mode's fixed scale (± for a signed one), the same for every run, so two runs' views compare
# by colour (Inspect's fixed scale for surprisal and entropy is the same).
COLOUR_MODES: list[dict[str, Any]] = [
    {"id": "loss", "label": "loss (surprisal)", "unit": "nats", "signed": False, "fixed_max": 16.0},
    {"id": "entropy", "label": "entropy", "unit": "nats", "signed": False, "fixed_max": 8.0},
    {
        "id": "change_start",
        "label": "change since step 0",
        "unit": "nats",
        "signed": True,
        "fixed_max": 5.0,
    },
    {
        "id": "change_best",
        "label": "change since its best",
        "unit": "nats",
        "signed": True,
        "fixed_max": 5.0,
    },
]
LOSS_DIGITS, ENTROPY_DIGITS = 4, 3


def matrix(values: np.ndarray, digits: int) -> list[Any]:
    """An array as nested lists of rounded numbers, null where not finite."""
    r = np.round(np.asarray(values, dtype=np.float64), digits)
    finite = np.isfinite(r)
    if finite.all():
        return list(r.tolist())
    out = r.astype(object)
    out[~finite] = None
    return list(out.tolist())


def probe_view(probe: Probe) -> dict[str, Any]:
    """The tokens a record follows, and the facts a page needs to show them."""
    return {
        "n_tokens": probe.n,
        "fingerprint": probe.fingerprint(),
        "tokens": probe.texts,
        "ids": probe.ids.tolist(),
        "sources": [{"id": s, "label": SOURCE_LABELS[s]} for s in SOURCES],
        "source": probe.source.tolist(),
        "block": probe.block.tolist(),
        "position": probe.position.tolist(),
        "low_entropy": probe.low_entropy.astype(bool).tolist(),
        "start_entropy": matrix(probe.start_entropy, ENTROPY_DIGITS),
        "entropy_split": rounded(probe.entropy_split),
        "buckets": BUCKETS,
        "covers_eval": probe.covers_eval,
    }


def _drops(record: TokenRecord) -> list[Any] | None:
    """Drop counts per step, null for tokens that are not training tokens."""
    if record.drops is None:
        return None
    out = record.drops.astype(object)
    out[:, ~record.probe.of_source("train")] = None
    return list(out.tolist())


def tokens_view(
    record: TokenRecord,
    step: int | None = None,
    with_rank: bool = False,
    thresholds: Thresholds = Thresholds(),
    top: int = 20,
) -> dict[str, Any]:
    """A run's token record as JSON: every evaluation, or (``step``) the record as it stood then:
    that step's row, and the cartography of the evaluations up to it."""
    seen = record if step is None else record.until(step)
    rows = record if step is None else record.select_rows([record.row(step)])
    return {
        **probe_view(record.probe),
        "step": step,
        "all_steps": record.steps.tolist(),
        "steps": rows.steps.tolist(),
        "loss": matrix(rows.loss, LOSS_DIGITS),
        "entropy": matrix(rows.entropy, ENTROPY_DIGITS),
        "rank": None if not with_rank or rows.rank is None else rows.rank.tolist(),
        "drops": _drops(rows),
        "eval_loss": [None if m is None else round(m, 6) for m in rows.heldout_means()],
        "eval_metric": {"name": metrics.EVAL_LOSS, "label": metrics.label(metrics.EVAL_LOSS)},
        "cartography": cartography(seen, thresholds, top),
        "colour_modes": COLOUR_MODES,
        "bound": {
            "max_tokens": MAX_PROBE_TOKENS,
            "max_evaluations": MAX_EVALUATIONS,
            "every": record.every,
        },
    }


def tokens_csv(record: TokenRecord, step: int | None = None) -> str:
    """One row per token: where it is, its bucket and class, then its loss and entropy at each
    step (columns loss_<step>, entropy_<step>, and rank_/drops_ where recorded)."""
    view = tokens_view(record, step, with_rank=True, top=0)
    steps = view["steps"]
    arrays = [(name, view[name]) for name in ("loss", "entropy", "rank", "drops") if view[name]]
    out = io.StringIO()
    writer = csv.writer(out)
    head = ["index", "token", "id", "source", "block", "position", "bucket", "start_entropy"]
    writer.writerow([*head, "class", *(f"{name}_{s}" for name, _ in arrays for s in steps)])
    for i in range(view["n_tokens"]):
        where = [i, view["tokens"][i], view["ids"][i], SOURCES[view["source"][i]]]
        where += [view["block"][i], view["position"][i]]
        where += ["low" if view["low_entropy"][i] else "high", view["start_entropy"][i]]
        cls = CLASS_IDS[view["cartography"]["class"][i]]
        values = [rows[r][i] for _, rows in arrays for r in range(len(steps))]
        writer.writerow([*where, cls, *("" if v is None else v for v in values)])
    return out.getvalue()


def common_steps(records: Sequence[TokenRecord]) -> list[int]:
    """The evaluation steps every record holds: the steps a compare can be asked at (?step=)."""
    shared = set(records[0].steps.tolist())
    for record in records[1:]:
        shared &= set(record.steps.tolist())
    return sorted(int(s) for s in shared)


def runs_compare_view(
    a: TokenRecord, b: TokenRecord, names: Sequence[str], step: int | None = None
) -> dict[str, Any]:
    """Two runs' records side by side: b - a per token (``names``: how to call them)."""
    return {
        **probe_view(a.probe),
        "runs": list(names),
        "step": step,
        "common_steps": common_steps([a, b]),
        **compare_runs(a, b, step, names),
    }


def seeds_compare_view(
    pairs: Sequence[tuple[int, TokenRecord, TokenRecord]],
    names: Sequence[str],
    step: int | None = None,
) -> dict[str, Any]:
    """A study's two variants over seeds: mean b - a per token, consistent signs marked."""
    result = compare_seeds(pairs, step, names)
    steps = common_steps([r for _, a, b in pairs for r in (a, b)])
    return {
        **probe_view(pairs[0][1].probe),
        "variants": list(names),
        "step": step,
        "common_steps": steps,
        **result,
    }
