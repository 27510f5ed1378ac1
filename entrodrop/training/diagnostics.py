"""DESIGN section 2 diagnostics: held-out loss overall and by reference entropy, general-text loss.

Every loss here is a mean over the tokens that carry loss in training: all tokens of plain text,
the answer tokens of instruction data (``TokenRows.trained``). :meth:`Diagnostics.score` gives
the per-token losses (and entropies) the means are taken over, for the token record.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import torch

from entrodrop import metrics
from entrodrop.data import TokenRows
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


def entropy_median(entropies: torch.Tensor, trained: torch.Tensor | None = None) -> float:
    """Median of the finite entropies of the trained tokens (all, without a mask): the split."""
    if trained is not None:
        entropies = entropies.masked_fill(~trained, math.nan)
    finite = entropies[torch.isfinite(entropies)]
    return float(finite.median()) if finite.numel() else math.inf


def loss_mask(blocks: torch.Tensor) -> torch.Tensor:
    """(N, T) bool: the positions of fixed-length blocks whose loss counts: every token but a
    block's first (which nothing predicts)."""
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
    tokens over the run. Only trained tokens count (``heldout.trained``, ``general.trained``).
    """

    heldout: TokenRows  # (N, T) rows
    low_entropy: torch.Tensor  # (N, T) bool, False at column 0 and on untrained tokens
    general: TokenRows | None  # (M, T) rows, or None without a general-text set
    autocast_dtype: torch.dtype | None = None
    start_entropy: torch.Tensor | None = None  # (N, T) the starting model's held-out entropies
    entropy_split: float = math.nan  # the training median that splits low from high (nats)

    @property
    def heldout_counted(self) -> torch.Tensor:
        """(N, T) bool: the held-out positions whose loss eval/loss averages (those finite)."""
        return self.heldout.trained

    def score(
        self, model: Any, rank: int = 0, world: int = 1, ranked: Collection[str] = ()
    ) -> ShardScores:
        """Per-token loss and entropy of this process's share of each set, and the true tokens'
        ranks in the sets named in `ranked` ("heldout", "general"). Right padding needs no
        attention mask: a causal model's real tokens never see it."""
        heldout = general = None
        if len(shard := self.heldout.ids[rank::world]):
            heldout = forward_token_stats(
                model, shard, self.autocast_dtype, True, with_rank="heldout" in ranked
            )
        if self.general is not None and len(shard := self.general.ids[rank::world]):
            general = forward_token_stats(
                model, shard, self.autocast_dtype, True, with_rank="general" in ranked
            )
        return ShardScores(heldout, general)

    def token_losses(
        self, model: Any, rows: TokenRows, rank: int = 0, world: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the rows: per-token loss (n, T) and where it counts (n, T) bool."""
        loss = forward_token_stats(model, rows.ids[rank::world], self.autocast_dtype, True).loss
        assert loss is not None
        return loss, rows.trained[rank::world] & torch.isfinite(loss)

    def _sums(self, scores: ShardScores, rank: int, world: int) -> torch.Tensor:
        """This rank's share of [held-out sum, n, low sum, n, high sum, n, general sum, n]."""
        sums = torch.zeros(8, dtype=torch.float64)
        if scores.heldout is not None:
            loss = scores.heldout.loss
            assert loss is not None
            low = self.low_entropy[rank::world]
            valid = torch.isfinite(loss) & self.heldout.trained[rank::world]
            for i, mask in enumerate((valid, valid & low, valid & ~low)):
                sums[2 * i] = loss[mask].double().sum()
                sums[2 * i + 1] = mask.sum()
        if scores.general is not None and self.general is not None:
            loss = scores.general.loss
            assert loss is not None
            valid = torch.isfinite(loss) & self.general.trained[rank::world]
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
    heldout: TokenRows,
    general: TokenRows | None,
    train_median: float,
    model_fp: str,
    autocast_dtype: torch.dtype | None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Diagnostics:
    """Score the held-out rows once with the starting model (cached) to fix the entropy split."""
    ref = reference_entropies(
        model, heldout.ids, model_fp, autocast_dtype, should_stop, "held-out", progress
    )
    low = torch.isfinite(ref) & (ref <= train_median) & heldout.trained  # (N, T)
    n_trained = max(1, int(heldout.trained.sum()))
    log.info(
        "entropy split at the training median %.3f nats: %.1f%% of %d held-out trained tokens "
        "are low-entropy",
        train_median,
        100.0 * float(low.sum()) / n_trained,
        n_trained,
    )
    return Diagnostics(
        heldout, low, general, autocast_dtype, start_entropy=ref, entropy_split=train_median
    )
