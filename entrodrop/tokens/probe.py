"""The probe: which tokens a run's record follows, chosen once before training, within the bound.

Whole blocks, so the record reads as text: every held-out block while they fit (then the rows of
a step average to its eval/loss exactly), else blocks spread evenly over the set; then, if asked,
general-text blocks and training blocks in what is left of MAX_PROBE_TOKENS. Only positions whose
loss counts are followed (the mask: a block's first token has no prediction; instruction data
counts only its answers).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from entrodrop.tokens.record import SOURCES, Probe

PIECE_CONTEXT = (
    4  # tokens decoded before each one, so a leading space or a split character reads right
)


def choose_blocks(mask: torch.Tensor, budget: int) -> torch.Tensor:
    """Rows of `mask` (N, T) whose counted positions sum to at most `budget`: all of them when
    they fit, else as many as fit spread evenly over the set. (k,) long, increasing."""
    counts = mask.sum(dim=1)  # (N,)
    n = int(counts.shape[0])
    if int(counts.sum()) <= budget:
        return torch.arange(n)
    per_block = max(1, int(counts.float().mean().ceil()))
    for k in range(min(n, budget // per_block + 1), 0, -1):
        rows = torch.linspace(0, n - 1, k).round().long().unique()  # (k,)
        if int(counts[rows].sum()) <= budget:
            return rows
    return torch.zeros(0, dtype=torch.long)


def token_pieces(tokenizer: Any, ids: Sequence[int], context: int = PIECE_CONTEXT) -> list[str]:
    """Each token's text as it reads in place: its leading space kept, a character split over
    several byte tokens given to the token that completes it (the others get "")."""
    pieces = []
    for i in range(len(ids)):
        start = max(0, i - context)
        before = tokenizer.decode(list(ids[start:i])) if i > start else ""
        upto = tokenizer.decode(list(ids[start : i + 1]))
        if upto.endswith("\ufffd"):  # an incomplete character: the next token completes it
            pieces.append("")
            continue
        common = len(os.path.commonprefix([before.rstrip("\ufffd"), upto]))
        pieces.append(upto[common:])
    return pieces


@dataclass
class ProbePart:
    """The probe tokens of one source, and where the evaluation's scores of them are found.

    ``scored`` is the tensor whose rows the evaluation scores (rows rank::world on each process):
    every held-out (or general) block, or only the chosen training blocks; ``local_block`` is a
    token's row in it, ``block`` its block in the source.
    """

    source: str
    rows: torch.Tensor  # (k,) long: the source's blocks the part follows
    scored: torch.Tensor  # (n, T) token ids
    local_block: torch.Tensor  # (P_s,) long
    block: torch.Tensor  # (P_s,) long
    position: torch.Tensor  # (P_s,) long
    low_entropy: torch.Tensor  # (P_s,) bool
    start_entropy: torch.Tensor  # (P_s,) float

    @property
    def n(self) -> int:
        return int(self.block.shape[0])

    @property
    def ids(self) -> torch.Tensor:
        return self.scored[self.local_block, self.position]


def probe_part(
    source: str,
    blocks: torch.Tensor,
    mask: torch.Tensor,
    low_entropy: torch.Tensor,
    start_entropy: torch.Tensor,
    rows: torch.Tensor,
    own_blocks: bool = False,
) -> ProbePart:
    """The counted positions of blocks[rows], all tensors (N, T) token-aligned.

    ``own_blocks``: the part is scored on blocks[rows] alone (training tokens), not on the
    source's every block (held-out, general text: the evaluation scores those anyway).
    """
    sub = mask[rows]  # (k, T)
    j, position = sub.nonzero(as_tuple=True)  # row-major: block by block, in text order
    block = rows[j]
    return ProbePart(
        source=source,
        rows=rows,
        scored=blocks[rows] if own_blocks else blocks,
        local_block=j if own_blocks else block,
        block=block,
        position=position,
        low_entropy=low_entropy[block, position].bool(),
        start_entropy=start_entropy[block, position].float(),
    )


def _texts(part: ProbePart, tokenizer: Any) -> list[str]:
    """Each probe token's text, decoded block by block in place."""
    texts: list[str] = []
    pieces: dict[int, list[str]] = {}
    for row, pos in zip(part.local_block.tolist(), part.position.tolist(), strict=True):
        if row not in pieces:
            pieces = {row: token_pieces(tokenizer, part.scored[row].tolist())}
        texts.append(pieces[row][pos])
    return texts


def assemble(
    parts: Sequence[ProbePart], tokenizer: Any, entropy_split: float, covers_eval: bool
) -> Probe:
    """One Probe from its parts, in order (held-out, general, training)."""
    cat = lambda get, dtype: np.concatenate(  # noqa: E731
        [np.asarray(get(p).numpy(), dtype=dtype) for p in parts] or [np.zeros(0, dtype)]
    )
    source = np.concatenate(
        [np.full(p.n, SOURCES.index(p.source), np.uint8) for p in parts] or [np.zeros(0, np.uint8)]
    )
    return Probe(
        ids=cat(lambda p: p.ids, np.int32),
        texts=[text for p in parts for text in _texts(p, tokenizer)],
        source=source,
        block=cat(lambda p: p.block, np.int32),
        position=cat(lambda p: p.position, np.int32),
        low_entropy=cat(lambda p: p.low_entropy, bool),
        start_entropy=cat(lambda p: p.start_entropy, np.float16),
        entropy_split=entropy_split,
        covers_eval=covers_eval,
    )
