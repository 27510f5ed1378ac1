"""The probe: whole blocks within the bound, spread evenly, and token texts that read in place."""

from __future__ import annotations

from pathlib import Path

import torch

from entrodrop.tokens.probe import choose_blocks, probe_part, token_pieces
from entrodrop.training.diagnostics import loss_mask


def test_blocks_all_fit_or_spread_evenly_within_the_budget() -> None:
    mask = loss_mask(torch.zeros((10, 8), dtype=torch.long))  # 7 counted positions per block
    assert choose_blocks(mask, 70).tolist() == list(range(10))
    rows = choose_blocks(mask, 30)
    assert rows.tolist() == [0, 3, 6, 9]  # 4 blocks = 28 tokens, from the head to the tail
    assert choose_blocks(mask, 3).tolist() == []


def test_a_part_follows_the_counted_positions_in_text_order() -> None:
    blocks = torch.arange(24).view(4, 6)
    mask = loss_mask(blocks)
    mask[2, 4:] = False  # e.g. a prompt: positions whose loss does not count
    start = torch.rand(4, 6)
    part = probe_part("heldout", blocks, mask, start < 0.5, start, torch.tensor([1, 2]))
    assert part.block.tolist() == [1] * 5 + [2] * 3
    assert part.position.tolist() == [1, 2, 3, 4, 5, 1, 2, 3]
    assert part.ids.tolist() == [7, 8, 9, 10, 11, 13, 14, 15]
    train = probe_part(
        "train", blocks, mask, start < 0.5, start, torch.tensor([3]), own_blocks=True
    )
    assert train.scored.shape == (1, 6) and train.local_block.tolist() == [0] * 5
    assert train.block.tolist() == [3] * 5 and train.ids.tolist() == [19, 20, 21, 22, 23]


def test_token_pieces_join_into_the_decoded_text(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    text = "def café(x):\n    return x + 1  # naïve"
    ids = tokenizer(text)["input_ids"]
    pieces = token_pieces(tokenizer, ids)
    assert len(pieces) == len(ids)
    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert " return" in pieces or any(p.startswith(" ") for p in pieces)  # spaces kept in place
