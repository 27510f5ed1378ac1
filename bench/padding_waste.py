"""Padding waste of instruction batches on the built-in `python-qa` set (docs/data.md).

Counts, for the default model's chat template, the share of a batch's positions that are padding
under four ways of batching the training examples: every example padded to seq_len; padded to
the longest in its batch, batches drawn at random; the same with transformers' length-grouped
order (`train_sampling_strategy="group_by_length"`, what a run uses); and padding-free packing
(`DataCollatorWithFlattening`: no padding by construction). Token counting only, no model
forward: the numbers are exact and do not depend on the machine. Each random order is averaged
over 20 seeds. Run: `.venv/bin/python bench/padding_waste.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table, write_result  # noqa: E402

SEEDS = 20


def waste(lengths: list[int], order: list[int], batch: int, width: int | None) -> float:
    """Share of padded positions when examples are batched in `order` (width None: per batch)."""
    padded = real = 0
    for start in range(0, len(order), batch):
        rows = [lengths[i] for i in order[start : start + batch]]
        w = width or max(rows)
        padded += w * len(rows)
        real += sum(rows)
    return 1.0 - real / padded


def strategies(lengths: list[int], batch: int, seq_len: int) -> dict[str, float]:
    """Mean waste of each strategy over SEEDS orders."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    out = {"pad to seq_len": 0.0, "pad to longest, random": 0.0, "group_by_length": 0.0}
    for seed in range(SEEDS):
        g = torch.Generator().manual_seed(seed)
        random_order = torch.randperm(len(lengths), generator=g).tolist()
        grouped = get_length_grouped_indices(lengths, batch, generator=g)
        out["pad to seq_len"] += waste(lengths, random_order, batch, seq_len) / SEEDS
        out["pad to longest, random"] += waste(lengths, random_order, batch, None) / SEEDS
        out["group_by_length"] += waste(lengths, grouped, batch, None) / SEEDS
    out["packing (DataCollatorWithFlattening)"] = 0.0
    return out


def main() -> None:
    from entrodrop.config import PRESETS, RunConfig
    from entrodrop.data import TokenRows, load_dataset, tokenize_conversations
    from entrodrop.data.datasets import ChatData
    from entrodrop.models import load_tokenizer

    tokenizer, name = load_tokenizer("default")
    data = load_dataset("python-qa")
    assert isinstance(data, ChatData)
    config = RunConfig.model_validate(PRESETS["quick"])
    examples = tokenize_conversations(data.train, tokenizer, config.seq_len)
    rows = TokenRows.from_examples(examples, tokenizer.pad_token_id or 0)
    sets = {
        "all training examples": rows,
        "quick preset (first 2,048 tokens)": rows.head_tokens(config.max_train_tokens),
    }
    result: dict[str, object] = {"model": name, "seq_len": config.seq_len, "seeds": SEEDS}
    table: list[dict[str, object]] = []
    for label, subset in sets.items():
        lengths = subset.lengths.tolist()
        found = strategies(lengths, config.batch_size, config.seq_len)
        result[label] = {"examples": len(lengths), "tokens": sum(lengths), "waste": found}
        table += [
            {"examples": label, "n": len(lengths), "batching": k, "padding": f"{v:.1%}"}
            for k, v in found.items()
        ]
    print_table(table, ["examples", "n", "batching", "padding"])
    write_result("padding_waste", result)


if __name__ == "__main__":
    main()
