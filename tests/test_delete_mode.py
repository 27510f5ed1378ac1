"""The `delete` drop mode: dropped tokens leave the sequence (never seen, never predicted) and the
rest close up, for EntroDrop and the random ablation alike."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from entrodrop.config import EntroDropConfig, RunConfig
from entrodrop.policy import IGNORE_INDEX, ORIGIN, delete_tokens
from entrodrop.runfolder import RunFolder
from entrodrop.training import DropPolicy, EntroDropCollator
from entrodrop.training.run import train
from entrodrop.training.trainer import scatter_back

PAD = 99


def batch(**extra: torch.Tensor) -> dict[str, torch.Tensor]:
    ids = torch.tensor([[10, 11, 12, 13, 14, 15], [20, 21, 22, 23, 24, 25]])
    labels = ids.clone()
    labels[1, :2] = IGNORE_INDEX  # a prompt that carries no loss (answer-only training)
    return {"input_ids": ids, "labels": labels, "example_index": torch.tensor([7, 8])} | extra


def test_deleted_tokens_are_gone_the_rest_close_up_in_order_with_their_labels() -> None:
    drops = torch.tensor([[0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    out = delete_tokens(batch(), drops, PAD)
    assert out["input_ids"].tolist() == [[10, 12, 13, 15, PAD, PAD], [20, 21, 23, 24, 25, PAD]]
    # each kept token keeps its own label (the model shifts them): none predicts a deleted one
    assert out["labels"].tolist() == [
        [10, 12, 13, 15, IGNORE_INDEX, IGNORE_INDEX],
        [IGNORE_INDEX, IGNORE_INDEX, 23, 24, 25, IGNORE_INDEX],
    ]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]]
    assert out[ORIGIN].tolist() == [[0, 2, 3, 5, -1, -1], [0, 1, 3, 4, 5, -1]]
    assert out["example_index"].tolist() == [7, 8]  # other columns pass through
    assert out["input_ids"].shape == (2, 6)
    nothing = delete_tokens(batch(), torch.zeros(2, 6, dtype=torch.bool), PAD)
    assert torch.equal(nothing["input_ids"], batch()["input_ids"])


def test_padding_and_packed_positions_are_renumbered() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    positions = torch.tensor([[0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 0, 0]])  # row 0: two sequences
    drops = torch.tensor([[0, 1, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0]], dtype=torch.bool)
    out = delete_tokens(batch(attention_mask=mask, position_ids=positions), drops, PAD)
    assert out["input_ids"].tolist() == [[10, 12, 13, 15, PAD, PAD], [20, 22, 23, PAD, PAD, PAD]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]
    # 10, 12 | 13, 15: each sequence counts from 0 again; padding was never a token to keep
    assert out["position_ids"].tolist() == [[0, 1, 0, 1, 0, 0], [0, 1, 2, 0, 0, 0]]
    assert out["labels"][1].tolist() == [IGNORE_INDEX, 22, 23, *[IGNORE_INDEX] * 3]


def test_the_collator_deletes_and_the_memory_maps_entropies_back() -> None:
    config = EntroDropConfig(
        drop_mode="delete", schedule="constant", rate_max=1.0, selection="threshold", threshold=0.5
    )
    ent = torch.tensor([[math.nan, 0.1, 5.0, 0.2, 6.0, 7.0], [math.nan, 4.0, 0.1, 5.0, 6.0, 7.0]])
    features = [
        {"input_ids": b, "example_index": i, "entropies": e}
        for i, (b, e) in enumerate(zip(batch()["input_ids"], ent, strict=True))
    ]
    collator = EntroDropCollator(policy=DropPolicy(config), drop_token_id=PAD, pad_token_id=PAD)
    out = collator(features)
    kept = [[t for t in row if t != PAD] for row in out["input_ids"].tolist()]
    assert kept == [[10, 12, 14, 15], [20, 21, 23, 24, 25]]  # the low-entropy candidates are gone
    seen = torch.tensor([[9.0, 1.0, 2.0, 3.0, 0.0, 0.0], [9.0, 1.0, 2.0, 3.0, 4.0, 0.0]])
    before = torch.full((2, 6), -1.0)
    back = scatter_back(before, seen, out[ORIGIN])
    assert back.tolist() == [[9.0, -1.0, 1.0, -1.0, 2.0, 3.0], [9.0, 1.0, -1.0, 2.0, 3.0, 4.0]]


@pytest.mark.parametrize(
    "method,source", [("entrodrop", "online"), ("random", "reference"), ("entrodrop", "reference")]
)
def test_a_run_trains_with_the_delete_mode(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, method: str, source: str
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg: dict[str, Any] = {
            "model": str(tiny_model_dir), "dataset": str(small_corpus), "method": method,
            "max_steps": 6, "seq_len": 32, "batch_size": 4, "eval_every": 3,
            "max_train_tokens": 256, "max_eval_tokens": 256,  # 2 steps an epoch: tokens seen again
            "entrodrop": {"entropy_source": source, "drop_mode": "delete",
                          "schedule": "constant", "rate_max": 0.5},
        }  # fmt: skip
        summary = train(RunConfig(**cfg), tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    assert summary["status"] == "succeeded" and summary["steps"] == 6
    rows = RunFolder(tmp_path / "run").read_metrics()
    realised = [r["value"] for r in rows if r["name"] == "drop/fraction_realised"]
    losses = [r["value"] for r in rows if r["name"] in ("train/loss", "eval/loss")]
    # the online source drops only once a token was seen: the first epoch drops none
    assert max(realised) > 0.05 and all(math.isfinite(v) for v in losses)
