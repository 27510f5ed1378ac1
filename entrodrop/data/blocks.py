"""Plain text as fixed-length token blocks: the documents as one stream, cut every seq_len tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from entrodrop.data.errors import DataError


def tokenize_texts(texts: Sequence[str], tokenizer: Any) -> list[int]:
    """All texts as one token stream, documents separated by the EOS token."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    batch = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    for ids in batch:
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
    return stream


def build_blocks(
    texts: Sequence[str], tokenizer: Any, seq_len: int, max_tokens: int | None = None
) -> torch.Tensor:
    """Cut the token stream into fixed-length blocks: LongTensor (N, seq_len); the tail is dropped."""
    if seq_len < 2:
        raise DataError("seq_len must be at least 2")
    stream = tokenize_texts(texts, tokenizer)
    if max_tokens is not None:
        stream = stream[:max_tokens]
    n_blocks = len(stream) // seq_len
    if n_blocks == 0:
        raise DataError(
            f"the data has {len(stream)} tokens, too few for one block of {seq_len}; "
            "use a shorter sequence length or more text"
        )
    return torch.tensor(stream[: n_blocks * seq_len], dtype=torch.long).view(n_blocks, seq_len)


def fingerprint_blocks(blocks: torch.Tensor) -> str:
    """A short content hash of a token tensor, for cache keys."""
    return hashlib.sha256(blocks.numpy().tobytes()).hexdigest()[:16]
