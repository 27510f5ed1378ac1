"""Token rows as tensors: ids (N, T) right-padded, lengths, and the tokens that carry loss.

One shape for both kinds of data: plain text as fixed blocks (every row full, every token after
the first trained) and instruction examples (rows of their own length, answers trained). The
training batches, the reference pre-pass, the held-out evaluation and the previews all take it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from entrodrop.data.examples import TokenizedExamples
from entrodrop.policy import IGNORE_INDEX


@dataclass
class TokenRows:
    """Rows of tokens: ids (N, T) padded on the right, lengths (N,), trained (N, T) bool.

    ``trained[n, t]``: token t of row n carries loss (False at t = 0, which nothing predicts,
    and on padding). Token-aligned like every per-token array here.
    """

    ids: torch.Tensor  # (N, T) long
    lengths: torch.Tensor  # (N,) long
    trained: torch.Tensor  # (N, T) bool

    @classmethod
    def from_blocks(cls, blocks: torch.Tensor) -> TokenRows:
        """Fixed-length blocks of plain text: every token after the first is trained."""
        n, t = blocks.shape
        trained = torch.ones((n, t), dtype=torch.bool)
        trained[:, 0] = False
        return cls(blocks, torch.full((n,), t, dtype=torch.long), trained)

    @classmethod
    def from_examples(cls, examples: TokenizedExamples, pad_id: int) -> TokenRows:
        """Examples of their own lengths, padded to the longest with `pad_id` (never trained)."""
        n = len(examples.ids)
        width = max((len(i) for i in examples.ids), default=1)
        ids = torch.full((n, width), pad_id, dtype=torch.long)
        trained = torch.zeros((n, width), dtype=torch.bool)
        for row, (tokens, mask) in enumerate(zip(examples.ids, examples.trained, strict=True)):
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            trained[row, : len(mask)] = torch.tensor(mask, dtype=torch.bool)
        lengths = torch.tensor([len(i) for i in examples.ids], dtype=torch.long)
        return cls(ids, lengths, trained)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def attention_mask(self) -> torch.Tensor:
        """(N, T) long: 1 on real tokens, 0 on padding."""
        positions = torch.arange(self.ids.shape[1])  # (T,)
        return (positions[None, :] < self.lengths[:, None]).long()

    @property
    def padded(self) -> bool:
        return bool((self.lengths < self.ids.shape[1]).any())

    @property
    def labels(self) -> torch.Tensor:
        """(N, T) long: the ids where trained, -100 elsewhere (the model shifts them)."""
        return self.ids.masked_fill(~self.trained, IGNORE_INDEX)

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    def select(self, index: torch.Tensor) -> TokenRows:
        """The rows at `index`, trimmed to the longest of them."""
        lengths = self.lengths[index]
        width = int(lengths.max()) if len(lengths) else 1
        return TokenRows(self.ids[index, :width], lengths, self.trained[index, :width])

    def head_tokens(self, max_tokens: int | None) -> TokenRows:
        """The first rows holding at most max_tokens tokens in all (at least one row)."""
        if max_tokens is None or self.n_tokens <= max_tokens:
            return self
        total = torch.cumsum(self.lengths, 0)
        keep = max(1, int((total <= max_tokens).sum()))
        return self.select(torch.arange(keep))

    def evenly_spaced(self, max_tokens: int | None) -> TokenRows:
        """At most ~max_tokens tokens of rows spread over the whole set rather than its head."""
        if max_tokens is None or self.n_tokens <= max_tokens:
            return self
        mean = self.n_tokens / len(self)
        keep = max(1, int(max_tokens // mean))
        index = torch.linspace(0, len(self) - 1, keep).round().long()  # (keep,)
        return self.select(index)
