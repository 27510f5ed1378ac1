"""Which tokens EntroDrop drops: selection, curriculum and drop, as pure functions on tensors.

Conventions (one place, used everywhere): ``entropies`` is token-aligned, shape (B, T):
``entropies[b, t]`` is the entropy of the distribution that predicted token t (computed from
position t-1). Position 0 and padding carry NaN: they have no entropy and are never dropped.
``trained`` (B, T) bool marks the tokens that carry loss (an instruction example's answers);
with ``drop_scope: trained`` only those are candidates, count for tau and for `random`'s count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from entrodrop.config import EntroDropConfig

IGNORE_INDEX = -100  # Hugging Face's "no loss here" label


def _sigmoid(x: float) -> float:
    # Two branches so math.exp never overflows (steepness up to 1000 gives |x| up to 1000).
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def drop_rate(progress: float, config: EntroDropConfig) -> float:
    """Scheduled drop probability r(s) for training progress s in [0, 1]."""
    if not math.isfinite(progress):
        raise ValueError(f"progress must be a finite number in [0, 1], got {progress}")
    s = min(max(progress, 0.0), 1.0)
    if config.schedule == "constant":
        shape = 1.0
    elif config.schedule == "linear":
        shape = s
    elif config.schedule == "cosine":
        shape = 0.5 * (1.0 - math.cos(math.pi * s))
    else:  # sigmoid curriculum: little early, more later
        shape = _sigmoid(config.steepness * (s - config.midpoint))
    return config.rate_max * shape


def in_scope(
    entropies: torch.Tensor, trained: torch.Tensor | None, config: EntroDropConfig
) -> torch.Tensor:
    """The entropies of the tokens that may be dropped, NaN elsewhere: with drop_scope 'trained'
    only tokens that carry loss (prompt and template tokens never), with 'all' every token."""
    if trained is None or config.drop_scope == "all":
        return entropies
    return entropies.masked_fill(~trained.to(entropies.device), math.nan)


def scope_mask(
    trained: torch.Tensor, attention_mask: torch.Tensor | None, config: EntroDropConfig
) -> torch.Tensor:
    """(B, T) bool: the tokens in the drop scope (trained ones, or every real token for 'all')."""
    if config.drop_scope == "trained":
        return trained
    if attention_mask is None:
        return torch.ones_like(trained)
    return attention_mask.bool()


def entropy_threshold(entropies: torch.Tensor, config: EntroDropConfig) -> float:
    """The low-entropy cut tau: the configured threshold, or the q-quantile of the finite entropies."""
    if config.selection == "threshold":
        assert config.threshold is not None  # guaranteed by the config validator
        return float(config.threshold)
    finite = entropies[torch.isfinite(entropies)].detach().float().cpu()
    if finite.numel() == 0:
        return -math.inf  # nothing has an entropy, so nothing is a candidate
    # kthvalue rather than torch.quantile: no input-size limit; "lower" interpolation.
    k = max(1, min(finite.numel(), int(math.floor(config.quantile * (finite.numel() - 1))) + 1))
    return float(torch.kthvalue(finite, k).values)


def candidate_mask(entropies: torch.Tensor, tau: float) -> torch.Tensor:
    """Low-entropy candidates: finite entropy <= tau, never the first position."""
    mask = torch.isfinite(entropies) & (entropies <= tau)
    mask[..., 0] = False
    return mask


def _uniform(
    shape: torch.Size, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    # Draw on the CPU from the seeded generator so the same seed drops the same tokens on any device.
    return torch.rand(shape, generator=generator).to(device)


def select_drops(
    entropies: torch.Tensor,
    config: EntroDropConfig,
    progress: float,
    generator: torch.Generator | None = None,
    tau: float | None = None,
    trained: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bool mask of dropped tokens: each candidate is dropped with probability r(progress).

    ``generator`` defaults to a CPU generator seeded with ``config.seed``; ``tau`` defaults to
    :func:`entropy_threshold` over ``entropies`` (pass the training-set tau to reuse it);
    ``trained`` (B, T) limits candidates and tau to the drop scope (:func:`in_scope`).
    """
    entropies = in_scope(entropies, trained, config)
    if generator is None:
        generator = torch.Generator().manual_seed(config.seed)
    cut = entropy_threshold(entropies, config) if tau is None else tau
    candidates = candidate_mask(entropies, cut)
    rate = drop_rate(progress, config)
    return candidates & (_uniform(entropies.shape, generator, entropies.device) < rate)


def select_random_drops(
    entropies: torch.Tensor,
    config: EntroDropConfig,
    progress: float,
    generator: torch.Generator | None = None,
    tau: float | None = None,
    trained: torch.Tensor | None = None,
) -> torch.Tensor:
    """The `random` ablation: same schedule and expected drop count, positions chosen uniformly.

    Expected drops of EntroDrop here = r * n_candidates; spreading that over all n_valid tokens
    (those in the same drop scope) means each is dropped with probability r * n_candidates /
    n_valid.
    """
    entropies = in_scope(entropies, trained, config)
    if generator is None:
        generator = torch.Generator().manual_seed(config.seed)
    cut = entropy_threshold(entropies, config) if tau is None else tau
    valid = torch.isfinite(entropies)
    valid[..., 0] = False
    n_valid = int(valid.sum())
    if n_valid == 0:
        return torch.zeros_like(valid)
    fraction = int(candidate_mask(entropies, cut).sum()) / n_valid
    rate = drop_rate(progress, config) * fraction
    return valid & (_uniform(entropies.shape, generator, entropies.device) < rate)


def apply_drops(
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    drops: torch.Tensor,
    mode: str,
    drop_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a drop mask to a batch. Labels are token-aligned (the model shifts them).

    input: the input id at a dropped position becomes ``drop_token_id``; its target is kept.
    loss:  the dropped token leaves the loss (label -100); the input is unchanged.
    (delete changes the batch's shape of content, not two tensors: :func:`delete_tokens`.)
    """
    if mode not in ("input", "loss", "both"):
        raise ValueError(f"drop_mode must be 'input', 'loss' or 'both', got {mode!r}")
    new_ids, new_labels = input_ids, labels
    if mode in ("input", "both"):
        new_ids = input_ids.masked_fill(drops, drop_token_id)
    if mode in ("loss", "both"):
        new_labels = labels.masked_fill(drops, IGNORE_INDEX)
    return new_ids, new_labels


ORIGIN = "origin"  # delete_tokens' column: where each position's token was before the deletion


def delete_tokens(
    batch: Mapping[str, torch.Tensor], drops: torch.Tensor, pad_token_id: int
) -> dict[str, torch.Tensor]:
    """The `delete` mode: dropped tokens leave the sequence, never seen and never predicted.

    ``batch`` holds ``input_ids`` and ``labels`` (B, T), optionally ``attention_mask`` (0 =
    padding, anywhere in the row) and ``position_ids`` (B, T); other columns pass through. Each
    row keeps its real, undropped tokens in order, closed up at the start; the freed places at
    the end are padding (``pad_token_id``, label -100, attention_mask 0). Positions are
    renumbered: ``position_ids``, when given, count again from 0 at each sequence start (a 0 in
    the old ones: packed sequences stay apart); without them the model numbers 0..T-1 itself.
    ``origin`` (B, T) says where each kept token was (-1 on padding). The shape stays (B, T).
    """
    input_ids, labels = batch["input_ids"], batch["labels"]  # (B, T)
    real = torch.ones_like(drops) if "attention_mask" not in batch else batch["attention_mask"] != 0
    keep = real & ~drops  # (B, T)
    # A stable sort puts the kept positions first, in their order: order[b, j] = old column.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # (B, T)
    kept = torch.gather(keep, 1, order)  # (B, T): True for the first keep[b].sum() places
    out = dict(batch)
    out["input_ids"] = torch.gather(input_ids, 1, order).masked_fill(~kept, pad_token_id)
    out["labels"] = torch.gather(labels, 1, order).masked_fill(~kept, IGNORE_INDEX)
    out["attention_mask"] = kept.to(
        batch["attention_mask"].dtype if "attention_mask" in batch else torch.long
    )
    if "position_ids" in batch:
        out["position_ids"] = _renumbered(batch["position_ids"], keep, order, kept)
    out[ORIGIN] = order.masked_fill(~kept, -1)
    return out


def _renumbered(
    positions: torch.Tensor, keep: torch.Tensor, order: torch.Tensor, kept: torch.Tensor
) -> torch.Tensor:
    """New position ids after a deletion: 0, 1, 2... within each packed sequence's kept tokens."""
    sequence = torch.cumsum((positions == 0).to(torch.long), dim=1)  # (B, T) sequence number
    sequence = torch.gather(sequence, 1, order)  # follows the tokens
    count = torch.cumsum(kept.to(torch.long), dim=1)  # 1, 2, 3... over the kept places
    # Where a new sequence starts, remember the count before it; a running max carries it on.
    starts = torch.ones_like(kept)
    starts[:, 1:] = sequence[:, 1:] != sequence[:, :-1]
    before = torch.where(starts, count - 1, torch.zeros_like(count))
    offset = torch.cummax(before, dim=1).values
    return (count - 1 - offset).masked_fill(~kept, 0).to(positions.dtype)
