"""The per-token record: each probe token's loss and entropy (and rank) at every evaluation.

One safetensors file in the run folder (``runfolder.TOKENS``), rewritten atomically after each
evaluation by the training process's main process. Arrays are aligned to the probe's tokens:

===================  ==========  =========  ==================================================
tensor               shape       dtype      what
===================  ==========  =========  ==================================================
``ids``              (P,)        int32      the token ids
``source``           (P,)        uint8      index into SOURCES: held-out, general text, training
``block``            (P,)        int32      the token's block in its source
``position``         (P,)        int32      its position in that block
``low_entropy``      (P,)        bool       starting-model entropy <= the training median
``start_entropy``    (P,)        float16    the starting model's entropy (nats)
``steps``            (R,)        int64      the evaluation steps, increasing (step 0 first)
``loss``             (R, P)      float32    surprisal -log p(token) under that step's weights
``entropy``          (R, P)      float16    entropy of the distribution that predicted it
``rank``             (R, P)      uint16     rank of the true token (1 = top), capped at RANK_CAP
``drops``            (R, P)      uint16     times a training token was dropped so far (else 0)
===================  ==========  =========  ==================================================

``rank`` and ``drops`` are optional. The loss is float32 so that a row's mean over the held-out
tokens is the step's ``eval/loss`` (fp16's half step of 0.002-0.004 nats at 2-8 nats would move
a few hundred tokens' mean by ~1e-4); entropy, a colour, is fp16. The token texts and the
record's facts are JSON in the file's metadata (key META_KEY).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from entrodrop.tokens import MAX_EVALUATIONS, NoTokenRecord, StepNotRecorded, TokenRecordError

SOURCES = ("heldout", "general", "train")
SOURCE_LABELS = {"heldout": "held-out", "general": "general text", "train": "training"}
RANK_CAP = 65535  # uint16: a rank beyond it is stored as RANK_CAP
COUNT_CAP = 65535
FORMAT_VERSION = 1
META_KEY = "entrodrop_tokens"


@dataclass(frozen=True)
class Probe:
    """The tokens a record follows, fixed before training; arrays (P,) aligned to the tokens."""

    ids: np.ndarray  # int32
    texts: list[str]  # each token's text as it reads in place (joined: the decoded blocks)
    source: np.ndarray  # uint8, index into SOURCES
    block: np.ndarray  # int32
    position: np.ndarray  # int32
    low_entropy: np.ndarray  # bool
    start_entropy: np.ndarray  # float16, nats
    entropy_split: float  # the low/high split: the training tokens' median entropy (nats)
    covers_eval: bool  # the held-out part is every token eval/loss averages over

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    def fingerprint(self) -> str:
        """A hash of which tokens these are (ids, source, block, position): equal probes match."""
        h = hashlib.sha256()
        for array, dtype in ((self.ids, "<i4"), (self.source, "u1"), (self.block, "<i4")):
            h.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
        h.update(np.ascontiguousarray(self.position, dtype="<i4").tobytes())
        return h.hexdigest()[:16]

    def of_source(self, name: str) -> np.ndarray:
        """(P,) bool: the tokens that come from one source."""
        return np.asarray(self.source == SOURCES.index(name))


def thinning_stride(last: int, every: int, limit: int = MAX_EVALUATIONS) -> int:
    """The smallest power of two s such that the multiples of every*s up to `last` (step 0 among
    them) and `last` itself number at most `limit`."""
    if limit < 2:
        raise ValueError("a record keeps at least its first and last evaluation: limit >= 2")
    every, stride = max(1, every), 1
    while True:
        grid = every * stride
        if last // grid + 1 + (last % grid != 0) <= limit:
            return stride
        stride *= 2


def kept_rows(steps: Sequence[int], every: int, limit: int = MAX_EVALUATIONS) -> list[int]:
    """Which rows a record keeps: the first, the last and those on the grid of every x
    thinning_stride steps (all of them while every evaluation fits).

    The grid depends only on the last step, so a record is the same whatever happened before
    (a resumed run's record equals an uninterrupted one's once it passes the step it stopped at).
    Steps off the every-grid (evaluations a caller made at other steps) coarsen it further.
    """
    n = len(steps)
    stride = thinning_stride(int(steps[-1]), every, limit) if n else 1
    if stride == 1 and n <= limit:
        return list(range(n))
    while True:
        grid = max(1, every) * stride
        keep = [i for i, s in enumerate(steps) if i in (0, n - 1) or int(s) % grid == 0]
        if len(keep) <= limit:
            return keep
        stride *= 2


@dataclass(frozen=True)
class TokenRecord:
    """A probe and one row per kept evaluation; arrays (R, P), rows in step order."""

    probe: Probe
    every: int  # the run's eval_every: the thinning grid's unit
    steps: np.ndarray  # (R,) int64
    loss: np.ndarray  # (R, P) float32
    entropy: np.ndarray  # (R, P) float16
    rank: np.ndarray | None = None  # (R, P) uint16
    drops: np.ndarray | None = None  # (R, P) uint16

    @classmethod
    def empty(
        cls, probe: Probe, every: int, with_rank: bool = True, with_drops: bool = False
    ) -> TokenRecord:
        p = probe.n
        return cls(
            probe,
            every,
            np.zeros(0, np.int64),
            np.zeros((0, p), np.float32),
            np.zeros((0, p), np.float16),
            np.zeros((0, p), np.uint16) if with_rank else None,
            np.zeros((0, p), np.uint16) if with_drops else None,
        )

    @property
    def n_rows(self) -> int:
        return int(self.steps.shape[0])

    def select_rows(self, index: Sequence[int] | np.ndarray) -> TokenRecord:
        """The record with only these rows (indices, in order)."""
        index = np.asarray(index, dtype=np.int64)
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return replace(
            self,
            steps=self.steps[index],
            loss=self.loss[index],
            entropy=self.entropy[index],
            rank=pick(self.rank),
            drops=pick(self.drops),
        )

    def until(self, step: int) -> TokenRecord:
        """The rows of evaluations at or before `step` (a resume cuts the record back to this)."""
        return self.select_rows(np.flatnonzero(self.steps <= step))

    def thinned(self, limit: int = MAX_EVALUATIONS) -> TokenRecord:
        return self.select_rows(kept_rows(self.steps.tolist(), self.every, limit))

    def with_row(
        self,
        step: int,
        loss: np.ndarray,
        entropy: np.ndarray,
        rank: np.ndarray | None = None,
        drops: np.ndarray | None = None,
        limit: int = MAX_EVALUATIONS,
    ) -> TokenRecord:
        """This record with an evaluation at `step` added (replacing any row at or after it),
        thinned to `limit` rows."""
        base = self.select_rows(np.flatnonzero(self.steps < step))

        def add(rows: np.ndarray | None, row: np.ndarray | None, cap: int | None) -> Any:
            if rows is None:
                return None
            if row is None:
                raise ValueError("this record keeps that array: give its row")
            row = np.asarray(row, dtype=np.float64)
            if cap is not None:
                row = np.clip(np.nan_to_num(row, nan=cap), 0, cap)
            return np.concatenate([rows, row.astype(rows.dtype)[None]])

        grown = replace(
            base,
            steps=np.append(base.steps, np.int64(step)),
            loss=add(base.loss, loss, None),
            entropy=add(base.entropy, entropy, None),
            rank=add(base.rank, rank, RANK_CAP),
            drops=add(base.drops, drops, COUNT_CAP),
        )
        return grown.thinned(limit)

    def row(self, step: int) -> int:
        """The row of an evaluation step (StepNotRecorded, listing the steps, if none)."""
        found = np.flatnonzero(self.steps == step)
        if not len(found):
            shown = ", ".join(str(s) for s in self.steps.tolist()) or "none yet"
            raise StepNotRecorded(f"no evaluation at step {step} in the record (steps: {shown})")
        return int(found[0])

    def heldout_means(self) -> list[float | None]:
        """Each row's mean loss over the held-out tokens: eval/loss when the probe covers it."""
        held = self.probe.of_source("heldout")
        out: list[float | None] = []
        for row in self.loss[:, held].astype(np.float64):
            finite = row[np.isfinite(row)]
            out.append(float(finite.mean()) if finite.size else None)
        return out


# ---------------------------------------------------------------- the file


def encode(record: TokenRecord) -> bytes:
    """The record as safetensors bytes (the run folder writes them atomically)."""
    from safetensors.numpy import save

    p = record.probe
    tensors: dict[str, np.ndarray] = {
        "ids": p.ids.astype(np.int32),
        "source": p.source.astype(np.uint8),
        "block": p.block.astype(np.int32),
        "position": p.position.astype(np.int32),
        "low_entropy": p.low_entropy.astype(bool),
        "start_entropy": p.start_entropy.astype(np.float16),
        "steps": record.steps.astype(np.int64),
        "loss": record.loss.astype(np.float32),
        "entropy": record.entropy.astype(np.float16),
    }
    if record.rank is not None:
        tensors["rank"] = record.rank.astype(np.uint16)
    if record.drops is not None:
        tensors["drops"] = record.drops.astype(np.uint16)
    meta = {
        "version": FORMAT_VERSION,
        "every": record.every,
        "sources": list(SOURCES),
        "texts": p.texts,
        "entropy_split": p.entropy_split if math.isfinite(p.entropy_split) else None,
        "covers_eval": p.covers_eval,
        "fingerprint": p.fingerprint(),
    }
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    return save(tensors, metadata={META_KEY: json.dumps(meta, ensure_ascii=False)})


def read_record(path: Path) -> TokenRecord:
    """The record in a file: NoTokenRecord if there is none, TokenRecordError if unreadable."""
    from safetensors import safe_open

    if not path.is_file():
        raise NoTokenRecord(f"no token record at {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})[META_KEY])
            t = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - not a dict
    except Exception as exc:  # a damaged file is a readable error, never a 500
        raise TokenRecordError(f"unreadable token record {path.name}: {exc}") from exc
    if meta.get("version") != FORMAT_VERSION:
        raise TokenRecordError(f"token record {path.name} has format {meta.get('version')!r}")
    split = meta.get("entropy_split")
    probe = Probe(
        ids=t["ids"],
        texts=list(meta["texts"]),
        source=t["source"],
        block=t["block"],
        position=t["position"],
        low_entropy=t["low_entropy"].astype(bool),
        start_entropy=t["start_entropy"],
        entropy_split=math.nan if split is None else float(split),
        covers_eval=bool(meta.get("covers_eval")),
    )
    return TokenRecord(
        probe,
        int(meta["every"]),
        t["steps"],
        t["loss"],
        t["entropy"],
        t.get("rank"),
        t.get("drops"),
    )
