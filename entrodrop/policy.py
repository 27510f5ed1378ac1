"""Which tokens EntroDrop drops: selection, curriculum and drop, as pure functions on tensors.

Conventions (one place, used everywhere): ``entropies`` is token-aligned, shape (B, T):
``entropies[b, t]`` is the entropy of the distribution that predicted token t (computed from
position t-1). Position 0 and padding carry NaN: they have no entropy and are never dropped.
``trained`` (B, T) bool marks the tokens that carry loss (an instruction example's answers);
with ``drop_scope: trained`` only those are candidates, count for tau and for `random`'s count.
"""

from __future__ import annotations

import math

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
    """
    if mode not in ("input", "loss", "both"):
        raise ValueError(f"drop_mode must be 'input', 'loss' or 'both', got {mode!r}")
    new_ids, new_labels = input_ids, labels
    if mode in ("input", "both"):
        new_ids = input_ids.masked_fill(drops, drop_token_id)
    if mode in ("loss", "both"):
        new_labels = labels.masked_fill(drops, IGNORE_INDEX)
    return new_ids, new_labels
