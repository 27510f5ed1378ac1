"""The token record during training: each evaluation's per-token results, gathered and written.

The evaluation already scores every held-out (and general-text) token to compute its losses;
the recorder keeps the probe's share of those tensors (and, with record_ranks, the true tokens'
ranks: one more pass over the logits), scores the few training blocks it follows if asked, and
rewrites the run folder's record (main process). With several processes each fills the probe
entries of its own rows and one sum all-reduce assembles them. docs/tokens.md has the format
and the cost.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from entrodrop.runfolder import RunFolder
from entrodrop.tokens import MAX_PROBE_TOKENS, TokenRecordError
from entrodrop.tokens.probe import ProbePart, assemble, choose_blocks, probe_part
from entrodrop.tokens.record import TokenRecord
from entrodrop.training.diagnostics import Diagnostics, ShardScores, loss_mask
from entrodrop.training.drops import DropCounts
from entrodrop.training.reference import TokenStats, forward_token_stats, reference_entropies

log = logging.getLogger(__name__)

Reduce = Callable[[torch.Tensor], torch.Tensor]
LOSS, ENTROPY, RANK, DROPS = range(4)  # rows of the values one evaluation gathers


@dataclass
class TokenRecorder:
    """Adds a row to the run's token record at each evaluation and writes the record."""

    folder: RunFolder
    parts: list[ProbePart]
    record: TokenRecord
    autocast_dtype: torch.dtype | None = None
    drop_counts: DropCounts | None = None

    @property
    def with_rank(self) -> bool:
        return self.record.rank is not None

    @property
    def ranked(self) -> tuple[str, ...]:
        """The sets whose ranks the evaluation must compute: those the probe follows, if any."""
        return tuple(p.source for p in self.parts) if self.with_rank else ()

    def _stats(
        self, part: ProbePart, scores: ShardScores, model: Any, rank: int, world: int
    ) -> TokenStats | None:
        if part.source == "heldout":
            return scores.heldout
        if part.source == "general":
            return scores.general
        shard = part.scored[rank::world]  # the followed training blocks: scored here, not in eval
        if not len(shard):
            return None
        return forward_token_stats(
            model, shard, self.autocast_dtype, with_loss=True, with_rank=self.with_rank
        )

    def values(
        self, scores: ShardScores, model: Any, rank: int = 0, world: int = 1
    ) -> torch.Tensor:
        """(4, P) float64: this process's share of loss, entropy, rank and drops; 0 elsewhere."""
        out = torch.zeros((4, self.record.probe.n), dtype=torch.float64)
        offset = 0
        for part in self.parts:
            stats = self._stats(part, scores, model, rank, world)
            mine = (part.local_block % world) == rank  # (P_s,) the entries this process scored
            index = offset + mine.nonzero().squeeze(1)
            rows, cols = part.local_block[mine] // world, part.position[mine]
            if stats is not None and stats.loss is not None:
                out[LOSS, index] = stats.loss[rows, cols].double()
                out[ENTROPY, index] = stats.entropy[rows, cols].double()
                if stats.rank is not None:
                    out[RANK, index] = stats.rank[rows, cols].double()
            if part.source == "train" and self.drop_counts is not None:
                counts = self.drop_counts.counts[part.local_block, part.position]
                out[DROPS, offset : offset + part.n] = counts.double()  # every process: summed
            offset += part.n
        return out

    def add(
        self,
        step: int,
        scores: ShardScores,
        model: Any,
        rank: int = 0,
        world: int = 1,
        reduce: Reduce | None = None,
    ) -> None:
        """Record the evaluation at `step` (every process calls it; the main one writes)."""
        values = self.values(scores, model, rank, world)
        if world > 1 and reduce is not None:
            values = reduce(values)
        if not self.folder.writer:
            return
        v = values.numpy()
        self.record = self.record.with_row(
            step,
            v[LOSS],
            v[ENTROPY],
            v[RANK] if self.record.rank is not None else None,
            v[DROPS] if self.record.drops is not None else None,
        )
        self.folder.write_tokens(self.record)


# ---------------------------------------------------------------- set-up


@dataclass
class RecordSources:
    """What the recorder may follow besides the held-out tokens, and how to score a start."""

    model: Any
    model_fp: str
    tokenizer: Any
    train: torch.Tensor  # (N, T) training blocks
    train_entropies: torch.Tensor | None  # (N, T) reference entropies, if the run has them
    general_tokens: bool = False
    train_tokens: int = 0
    drops: bool = False  # the method drops tokens: count the followed ones' drops
    ranks: bool = False  # keep the true tokens' ranks (a pass over the logits: not free on a CPU)
    train_mask: torch.Tensor | None = None  # (N, T) training positions whose loss counts

    @property
    def train_counted(self) -> torch.Tensor:
        return loss_mask(self.train) if self.train_mask is None else self.train_mask


def _start_entropy(
    src: RecordSources, blocks: torch.Tensor, rows: torch.Tensor, autocast: torch.dtype | None
) -> torch.Tensor:
    """(N, T) starting-model entropies of blocks[rows] (cached), NaN on the other rows."""
    out = torch.full(blocks.shape, math.nan)
    if len(rows):
        out[rows] = reference_entropies(
            src.model, blocks[rows], src.model_fp, autocast, label="token record"
        )
    return out


def probe_parts(diag: Diagnostics, src: RecordSources) -> tuple[list[ProbePart], bool]:
    """The probe's parts within MAX_PROBE_TOKENS, and whether the held-out part is all of it.

    Call it with the starting weights (adapters off): it may score starting entropies.
    """
    mask = diag.heldout_counted
    rows = choose_blocks(mask, MAX_PROBE_TOKENS)
    assert diag.start_entropy is not None
    held = diag.heldout.ids
    parts = [probe_part("heldout", held, mask, diag.low_entropy, diag.start_entropy, rows)]
    covers = len(rows) == len(held)
    left = MAX_PROBE_TOKENS - parts[0].n
    split, autocast = diag.entropy_split, diag.autocast_dtype
    if src.general_tokens and diag.general is not None and left > 0:
        general, mask = diag.general.ids, diag.general.trained
        rows = choose_blocks(mask, left)
        start = _start_entropy(src, general, rows, autocast)
        low = torch.isfinite(start) & (start <= split)
        parts.append(probe_part("general", general, mask, low, start, rows))
        left -= parts[-1].n
    if src.train_tokens > 0 and left > 0:
        mask = src.train_counted
        rows = choose_blocks(mask, min(left, src.train_tokens))
        known = src.train_entropies  # the reference source scored them all already
        start = known if known is not None else _start_entropy(src, src.train, rows, autocast)
        low = torch.isfinite(start) & (start <= split)
        parts.append(probe_part("train", src.train, mask, low, start, rows, own_blocks=True))
    return [p for p in parts if p.n], covers


def _earlier_record(folder: RunFolder, fresh: TokenRecord) -> TokenRecord:
    """A resumed run continues the record its folder holds (already cut back to the checkpoint)
    if it follows the same tokens; otherwise it starts a new one."""
    try:
        earlier = folder.read_tokens()
    except TokenRecordError:
        return fresh
    same = earlier.probe.fingerprint() == fresh.probe.fingerprint()
    arrays = [
        (a is None) == (b is None)
        for a, b in ((earlier.drops, fresh.drops), (earlier.rank, fresh.rank))
    ]
    if same and earlier.every == fresh.every and all(arrays):
        return earlier
    log.warning("token record: the resumed run follows other tokens; starting a new record")
    return fresh


def build_recorder(
    folder: RunFolder, diag: Diagnostics, src: RecordSources, every: int, resume: bool
) -> TokenRecorder:
    """The recorder of a run: its probe, and the record so far when it resumes."""
    parts, covers = probe_parts(diag, src)
    probe = assemble(parts, src.tokenizer, diag.entropy_split, covers)
    train = next((p for p in parts if p.source == "train"), None)
    counts = None
    if train is not None and src.drops:
        counts = DropCounts(len(src.train), train.rows, src.train.shape[1])
    record = TokenRecord.empty(probe, every, src.ranks, with_drops=counts is not None)
    if resume:
        record = _earlier_record(folder, record)
    log.info(
        "token record: %d tokens (%s)%s",
        probe.n,
        ", ".join(f"{p.n} {p.source}" for p in parts),
        "" if covers else "; the held-out part is a subset: its rows do not average to eval/loss",
    )
    return TokenRecorder(folder, parts, record, diag.autocast_dtype, counts)
