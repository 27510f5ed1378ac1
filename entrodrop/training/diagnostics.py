"""DESIGN section 2 diagnostics: held-out loss overall and by reference entropy, general-text loss.

Every loss here is a mean over the tokens that carry loss in training: all tokens of plain text,
the answer tokens of instruction data (``TokenRows.trained``). ``Diagnostics.token_losses`` gives
the per-token losses (N, T) with that validity mask, for anything that records them per token.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from entrodrop import metrics
from entrodrop.data import TokenRows
from entrodrop.training.reference import forward_token_stats, reference_entropies

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

    def token_losses(
        self, model: Any, rows: TokenRows, rank: int = 0, world: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the rows: per-token loss (n, T) and where it counts (n, T) bool.

        Right padding needs no attention mask: a causal model's real tokens never see it.
        """
        shard = rows.ids[rank::world]
        loss = forward_token_stats(model, shard, self.autocast_dtype, with_loss=True).loss
        assert loss is not None
        return loss, rows.trained[rank::world] & torch.isfinite(loss)

    def _sums(self, model: Any, rank: int, world: int) -> torch.Tensor:
        """This rank's share of [held-out sum, n, low sum, n, high sum, n, general sum, n]."""
        sums = torch.zeros(8, dtype=torch.float64)
        if len(self.heldout.ids[rank::world]):
            loss, valid = self.token_losses(model, self.heldout, rank, world)
            low = self.low_entropy[rank::world]
            for i, mask in enumerate((valid, valid & low, valid & ~low)):
                sums[2 * i] = loss[mask].double().sum()
                sums[2 * i + 1] = mask.sum()
        if self.general is not None and len(self.general.ids[rank::world]):
            loss, valid = self.token_losses(model, self.general, rank, world)
            sums[6], sums[7] = loss[valid].double().sum(), valid.sum()
        return sums

    def evaluate(
        self,
        model: Any,
        rank: int = 0,
        world: int = 1,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, float]:
        """Mean per-token losses; with several processes each scores a shard and ``reduce`` sums."""
        sums = self._sums(model, rank, world)
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
    return Diagnostics(heldout, low, general, autocast_dtype)
