"""DESIGN section 2 diagnostics: held-out loss overall and by reference entropy, general-text loss."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import torch

from entrodrop import metrics
from entrodrop.training.reference import TokenStats, forward_token_stats, reference_entropies

log = logging.getLogger(__name__)


def evenly_spaced(blocks: torch.Tensor, max_tokens: int | None) -> torch.Tensor:
    """At most max_tokens worth of blocks (N, T), spread over the whole set rather than its head."""
    n, t = blocks.shape
    if max_tokens is None or n * t <= max_tokens:
        return blocks
    keep = max(1, max_tokens // t)
    index = torch.linspace(0, n - 1, keep).round().long()  # (keep,)
    return blocks[index]


def entropy_median(entropies: torch.Tensor) -> float:
    """Median of the finite token entropies: the low/high split point."""
    finite = entropies[torch.isfinite(entropies)]
    return float(finite.median()) if finite.numel() else math.inf


def loss_mask(blocks: torch.Tensor) -> torch.Tensor:
    """(N, T) bool: the positions whose loss counts: every token but a block's first (which
    nothing predicts)."""
    mask = torch.ones_like(blocks, dtype=torch.bool)
    mask[:, 0] = False
    return mask


@dataclass
class ShardScores:
    """One evaluation's token-aligned results on this process's share (rows rank::world)."""

    heldout: TokenStats | None
    general: TokenStats | None


@dataclass
class Diagnostics:
    """Held-out and general-text evaluation of the training model, run every `eval_every` steps.

    ``low_entropy`` marks held-out tokens whose reference (starting-model) entropy is at or below
    the training median: the split is fixed before training, so the two curves follow the same
    tokens over the run.
    """

    heldout: torch.Tensor  # (N, T) token ids
    low_entropy: torch.Tensor  # (N, T) bool, False at column 0
    general: torch.Tensor | None  # (M, T) token ids, or None without a general-text set
    autocast_dtype: torch.dtype | None = None
    start_entropy: torch.Tensor | None = None  # (N, T) the starting model's held-out entropies
    heldout_mask: torch.Tensor | None = None  # (N, T) bool, positions whose loss counts
    entropy_split: float = math.nan  # the training median that splits low from high (nats)

    @property
    def heldout_counted(self) -> torch.Tensor:
        """(N, T) bool: the held-out positions whose loss eval/loss averages (those finite)."""
        return loss_mask(self.heldout) if self.heldout_mask is None else self.heldout_mask

    def score(
        self, model: Any, rank: int = 0, world: int = 1, ranked: Collection[str] = ()
    ) -> ShardScores:
        """Per-token loss and entropy of this process's share of each set, and the true tokens'
        ranks in the sets named in `ranked` ("heldout", "general")."""
        heldout = general = None
        if len(shard := self.heldout[rank::world]):
            heldout = forward_token_stats(
                model, shard, self.autocast_dtype, True, with_rank="heldout" in ranked
            )
        if self.general is not None and len(shard := self.general[rank::world]):
            general = forward_token_stats(
                model, shard, self.autocast_dtype, True, with_rank="general" in ranked
            )
        return ShardScores(heldout, general)

    def _sums(self, scores: ShardScores, rank: int, world: int) -> torch.Tensor:
        """This rank's share of [held-out sum, n, low sum, n, high sum, n, general sum, n]."""
        sums = torch.zeros(8, dtype=torch.float64)
        if scores.heldout is not None:
            loss = scores.heldout.loss
            assert loss is not None
            low = self.low_entropy[rank::world]
            valid = torch.isfinite(loss) & self.heldout_counted[rank::world]
            for i, mask in enumerate((valid, valid & low, valid & ~low)):
                sums[2 * i] = loss[mask].double().sum()
                sums[2 * i + 1] = mask.sum()
        if scores.general is not None:
            loss = scores.general.loss
            assert loss is not None
            valid = torch.isfinite(loss)
            sums[6], sums[7] = loss[valid].double().sum(), valid.sum()
        return sums

    def evaluate(
        self,
        model: Any,
        rank: int = 0,
        world: int = 1,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
        scores: ShardScores | None = None,
    ) -> dict[str, float]:
        """Mean per-token losses; with several processes each scores a shard and ``reduce`` sums.

        ``scores``: this process's :meth:`score` of the model, when the caller has it already.
        """
        if scores is None:
            scores = self.score(model, rank, world)
        sums = self._sums(scores, rank, world)
        if reduce is not None and world > 1:
            sums = reduce(sums)
        names = metrics.EVALUATION  # the order of the sums above
        return {
            name: float(sums[2 * i] / sums[2 * i + 1])
            for i, name in enumerate(names)
            if sums[2 * i + 1] > 0
        }


def build_diagnostics(
    model: Any,
    heldout: torch.Tensor,
    general: torch.Tensor | None,
    train_median: float,
    model_fp: str,
    autocast_dtype: torch.dtype | None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Diagnostics:
    """Score the held-out blocks once with the starting model (cached) to fix the entropy split."""
    ref = reference_entropies(
        model, heldout, model_fp, autocast_dtype, should_stop, label="held-out", progress=progress
    )
    low = torch.isfinite(ref) & (ref <= train_median)  # (N, T)
    log.info(
        "entropy split at the training median %.3f nats: %.1f%% of held-out tokens are low-entropy",
        train_median,
        100.0 * float(low[:, 1:].float().mean()),
    )
    return Diagnostics(
        heldout, low, general, autocast_dtype, start_entropy=ref, entropy_split=train_median
    )
