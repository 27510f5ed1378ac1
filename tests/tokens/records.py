"""Hand-made token records for the tests: a probe of n tokens and chosen loss rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from entrodrop.tokens.record import SOURCES, Probe, TokenRecord


def make_probe(
    n: int = 6, ids: Sequence[int] | None = None, low: Sequence[bool] | None = None
) -> Probe:
    """n held-out tokens in one block; the first half low-entropy unless `low` says otherwise."""
    return Probe(
        ids=np.asarray(ids if ids is not None else range(10, 10 + n), dtype=np.int32),
        texts=[f"t{i}" for i in range(n)],
        source=np.full(n, SOURCES.index("heldout"), np.uint8),
        block=np.zeros(n, np.int32),
        position=np.arange(1, n + 1, dtype=np.int32),
        low_entropy=np.asarray(low if low is not None else [i < n // 2 for i in range(n)]),
        start_entropy=np.linspace(0.5, 3.0, n).astype(np.float16),
        entropy_split=1.5,
        covers_eval=True,
    )


def make_record(
    losses: Sequence[Sequence[float]],
    steps: Sequence[int] | None = None,
    probe: Probe | None = None,
    every: int = 10,
) -> TokenRecord:
    """A record whose row r holds losses[r] (one value per token); entropy = loss / 2."""
    loss = np.asarray(losses, dtype=np.float32)
    probe = probe if probe is not None else make_probe(loss.shape[1])
    record = TokenRecord.empty(probe, every)
    for i, row in enumerate(loss):
        step = steps[i] if steps is not None else i * every
        record = record.with_row(step, row, row / 2, np.arange(1, probe.n + 1))
    return record


# Token texts for a synthetic probe that reads like code: words, spaces, punctuation, newlines.
PIECES = [
    "def",
    " mean",
    "(",
    "xs",
    "):",
    "\n",
    "    ",
    "total",
    " =",
    " 0",
    "\n",
    "    ",
    "for",
    " x",
    " in",
    " xs",
    ":",
    "\n",
    "        ",
    "total",
    " +=",
    " x",
    "\n",
    "    ",
    "return",
    " total",
    " /",
    " len",
    "(",
    "xs",
    ")",
    "\n",
]


def large_record(n: int, rows: int, every: int = 10, seed: int = 0) -> TokenRecord:
    """A record of n held-out tokens in blocks of 128 (positions 1..127) and `rows` evaluations:
    losses that fall, some rising again after the middle (a rebound), entropies alongside."""
    rng = np.random.default_rng(seed)
    index = np.arange(n)
    probe = Probe(
        ids=rng.integers(0, 49152, n).astype(np.int32),
        texts=[PIECES[i % len(PIECES)] for i in range(n)],
        source=np.full(n, SOURCES.index("heldout"), np.uint8),
        block=(index // 127).astype(np.int32),
        position=(index % 127 + 1).astype(np.int32),
        low_entropy=rng.random(n) < 0.5,
        start_entropy=rng.uniform(0.0, 6.0, n).astype(np.float16),
        entropy_split=3.0,
        covers_eval=True,
    )
    start = rng.uniform(0.05, 9.0, n)
    rebound = rng.random(n) < 0.3
    record = TokenRecord.empty(probe, every, with_rank=False)
    for r in range(rows):
        s = r / max(1, rows - 1)
        loss = (
            start * (1 - 0.7 * s) + rebound * np.clip(s - 0.5, 0, None) * 6 + rng.normal(0, 0.2, n)
        )
        loss = np.clip(loss, 0.0, None)
        record = record.with_row(r * every, loss, loss * 0.8 + 0.3, limit=max(rows, 2))
    return record
