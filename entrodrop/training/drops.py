"""Which tokens a training batch drops (EntroDrop or the `random` ablation), and what was dropped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from entrodrop import metrics
from entrodrop.config import DROPPING_METHODS, DropMethod, EntroDropConfig
from entrodrop.policy import apply_drops, drop_rate, select_drops, select_random_drops
from entrodrop.scoring import predicted_tokens


def rank_seed(seed: int, rank: int) -> int:
    """A distinct drop-generator seed per process, so two ranks never draw the same stream."""
    return (seed + 1_000_003 * rank) % (2**63)


@dataclass
class DropPolicy:
    """The method's drop decision for one batch, with a seeded generator (reproducible runs).

    ``tau`` fixes the low-entropy cut (the training-set quantile, computed once, for the reference
    source); left None, the cut is recomputed over each batch's entropies (the online source).
    """

    config: EntroDropConfig
    method: DropMethod = "entrodrop"
    tau: float | None = None
    rank: int = 0
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        if self.method not in DROPPING_METHODS:
            raise ValueError(f"method must be 'entrodrop' or 'random', got {self.method!r}")
        self.generator = torch.Generator().manual_seed(rank_seed(self.config.seed, self.rank))

    def rate(self, progress: float) -> float:
        return drop_rate(progress, self.config)

    def select(
        self, entropies: torch.Tensor, progress: float, trained: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Bool mask (B, T) of dropped tokens for token-aligned entropies (B, T); ``trained``
        (B, T) bool: the tokens that carry loss, which bound the drop scope."""
        choose = select_drops if self.method == "entrodrop" else select_random_drops
        return choose(entropies, self.config, progress, self.generator, self.tau, trained)

    def apply(
        self, input_ids: torch.Tensor, labels: torch.Tensor, drops: torch.Tensor, drop_token_id: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return apply_drops(input_ids, labels, drops, self.config.drop_mode, drop_token_id)


# Sums that DropStats keeps, in this order (so ranks can add them up as one tensor).
_FIELDS = (
    "batches",
    "rate",
    "tokens",
    "dropped",
    "ent_dropped",
    "n_ent_dropped",
    "ent_kept",
    "n_ent_kept",
)


@dataclass
class DropStats:
    """Running sums of what was dropped since the last log: the `drop/*` diagnostics."""

    sums: torch.Tensor = field(
        default_factory=lambda: torch.zeros(len(_FIELDS), dtype=torch.float64)
    )

    def add(
        self,
        drops: torch.Tensor,
        entropies: torch.Tensor,
        rate: float,
        scope: torch.Tensor | None = None,
    ) -> None:
        """Record one batch: drops (B, T) bool, entropies (B, T) with NaN where unknown, and the
        drop scope (B, T) bool (None: every token; see entrodrop.policy.scope_mask)."""
        # (B, T-1): only tokens with a prediction count; the first token of a block has none
        drops = predicted_tokens(drops).cpu()
        entropies = predicted_tokens(entropies).detach().float().cpu()
        inside = None if scope is None else predicted_tokens(scope).cpu()
        known = torch.isfinite(entropies) if inside is None else torch.isfinite(entropies) & inside
        kept = ~drops & known
        dropped_known = drops & known
        values = [
            1.0,
            rate,
            float(drops.numel() if inside is None else inside.sum()),  # tokens that may drop
            float(drops.sum()),
            float(entropies[dropped_known].sum()),
            float(dropped_known.sum()),
            float(entropies[kept].sum()),
            float(kept.sum()),
        ]
        self.sums += torch.tensor(values, dtype=torch.float64)

    def reset(self) -> None:
        self.sums.zero_()

    @staticmethod
    def metrics(sums: torch.Tensor) -> dict[str, float]:
        """`drop/*` metric values from (possibly all-rank) sums; a metric with no data is left out."""
        s = dict(zip(_FIELDS, sums.tolist(), strict=True))
        out: dict[str, float] = {}
        if s["batches"] > 0:
            out[metrics.RATE_SCHEDULED] = s["rate"] / s["batches"]
        if s["tokens"] > 0:
            out[metrics.FRACTION_REALISED] = s["dropped"] / s["tokens"]
        if s["n_ent_dropped"] > 0:
            out[metrics.ENTROPY_DROPPED] = s["ent_dropped"] / s["n_ent_dropped"]
        if s["n_ent_kept"] > 0:
            out[metrics.ENTROPY_KEPT] = s["ent_kept"] / s["n_ent_kept"]
        return {k: v for k, v in out.items() if math.isfinite(v)}


class DropCounts:
    """How many times each watched training token was dropped so far, for the token record.

    Only the training blocks the record follows are counted: ``slots`` maps a training block to
    its row of ``counts`` (-1: not watched). Each process counts the batches it trains on; the
    record adds the processes' counts up, and a checkpoint keeps each process's own.
    """

    def __init__(self, n_blocks: int, watched: torch.Tensor, seq_len: int) -> None:
        self.slots = torch.full((n_blocks,), -1, dtype=torch.long)
        self.slots[watched] = torch.arange(len(watched))
        self.counts = torch.zeros((len(watched), seq_len), dtype=torch.int32)  # (K, T)

    def add(self, example_index: torch.Tensor, drops: torch.Tensor) -> None:
        """Count one batch: (B,) training block indices and their (B, T) bool drops."""
        rows = self.slots[example_index.cpu()]  # (B,)
        watched = rows >= 0
        if bool(watched.any()):
            self.counts.index_add_(0, rows[watched], drops.cpu()[watched].to(torch.int32))
