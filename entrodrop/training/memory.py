"""Per-token entropy memory for the online source in input mode: the entropy seen last time."""

from __future__ import annotations

import math

import torch


class EntropyMemory:
    """Entropies (n_examples, seq_len) from the last time each token position was trained on.

    The input mode must change a token before the forward pass, so it cannot use the current
    step's logits; it uses what the model said about that token the last time it saw it. A token
    never seen yet is NaN, and NaN is never dropped (the curriculum starts near zero anyway).
    """

    def __init__(self, n_examples: int, seq_len: int) -> None:
        self.values = torch.full((n_examples, seq_len), math.nan, dtype=torch.float32)

    def lookup(self, example_index: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """(B,) example indices -> (B, length) stored entropies (a copy); a padded batch asks for
        its own width (default: seq_len)."""
        return self.values[example_index.cpu(), :length].clone()

    def update(self, example_index: torch.Tensor, entropies: torch.Tensor) -> None:
        """Store (B, T) token-aligned entropies for the (B,) examples just trained on (T at most
        seq_len: a padded batch of shorter examples fills the first T positions)."""
        width = entropies.shape[1]
        self.values[example_index.cpu(), :width] = entropies.detach().float().cpu()

    @property
    def seen_fraction(self) -> float:
        return float(torch.isfinite(self.values).float().mean())
