"""Batches of fixed-length token blocks, with EntroDrop applied where it can be before the forward."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from entrodrop.policy import delete_tokens
from entrodrop.training.drops import DropCounts, DropPolicy, DropStats
from entrodrop.training.memory import EntropyMemory


class BlockDataset(Dataset[dict[str, Any]]):
    """Token blocks (N, T), optionally with token-aligned reference entropies (N, T) as a column."""

    def __init__(self, blocks: torch.Tensor, entropies: torch.Tensor | None = None) -> None:
        if entropies is not None and entropies.shape != blocks.shape:
            raise ValueError(f"entropies {tuple(entropies.shape)} != blocks {tuple(blocks.shape)}")
        self.blocks, self.entropies = blocks, entropies

    def __len__(self) -> int:
        return int(self.blocks.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {"input_ids": self.blocks[i], "example_index": i}
        if self.entropies is not None:
            item["entropies"] = self.entropies[i]
        return item


@dataclass
class ScheduleClock:
    """Training progress s in [0, 1], set by the training loop and read by the collator."""

    progress: float = 0.0


def _stack(features: Sequence[Mapping[str, Any]], key: str, dtype: torch.dtype) -> torch.Tensor:
    rows = [torch.as_tensor(f[key], dtype=dtype) for f in features]
    if len({r.shape for r in rows}) > 1:
        raise ValueError(f"EntroDropCollator needs fixed-length blocks; '{key}' lengths differ")
    return torch.stack(rows)


@dataclass
class EntroDropCollator:
    """Stack fixed-length blocks into a causal-LM batch and apply the drop policy to it.

    Features are dicts with ``input_ids`` (T,), optionally ``labels``, ``attention_mask``,
    ``example_index`` and token-aligned ``entropies`` (T,) (NaN = unknown, never dropped).
    Where the entropies come from:

    - a column (the reference source: a frozen starting model scored the data beforehand);
    - ``memory`` (the online source in input/both mode: the entropy seen last time);
    - nowhere (``policy`` None): a plain LM collator; the online loss mode then drops in the
      Trainer's ``compute_loss`` from the step's own logits.

    With a plain ``Trainer``, the drop happens here, at ``clock.progress`` (keep it current with
    ``ScheduleCallback``; the DataLoader prepares batches a step ahead, so the curriculum lags by
    up to one step). ``EntroDropTrainer`` sets ``deferred`` and calls :meth:`drop` itself at the
    step that trains on the batch, so the curriculum is exact and the drop generator's draws
    follow the steps (a resumed run draws what the uninterrupted one would).
    """

    policy: DropPolicy | None = None
    drop_token_id: int = 0
    memory: EntropyMemory | None = None
    clock: ScheduleClock = field(default_factory=ScheduleClock)
    stats: DropStats | None = None
    deferred: bool = False
    counts: DropCounts | None = None  # the token record's followed training tokens

    def __post_init__(self) -> None:
        if self.drop_token_id < 0:
            raise ValueError("drop_token_id must be a token id (>= 0)")

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        return self.torch_call(features)

    def torch_call(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids = _stack(features, "input_ids", torch.long)  # (B, T)
        has_labels = "labels" in features[0]
        labels = _stack(features, "labels", torch.long) if has_labels else input_ids.clone()
        batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "labels": labels}
        if "attention_mask" in features[0]:
            batch["attention_mask"] = _stack(features, "attention_mask", torch.long)
        if "example_index" in features[0]:
            batch["example_index"] = torch.tensor([int(f["example_index"]) for f in features])
        if "entropies" in features[0]:
            batch["entropies"] = _stack(features, "entropies", torch.float32)
        if self.policy is not None and not self.deferred:
            batch = self.drop(batch, self.clock.progress)
        return batch

    def drop(self, batch: Mapping[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        """Apply the policy at training progress s: a new batch without the ``entropies`` column."""
        if self.policy is None:
            raise ValueError("EntroDropCollator.drop needs a policy")
        out = dict(batch)
        entropies = self._entropies(out).to(out["input_ids"].device)  # (B, T)
        drops = self.policy.select(entropies, progress)  # (B, T) bool
        if self.stats is not None:
            self.stats.add(drops, entropies, self.policy.rate(progress))
        if self.counts is not None and "example_index" in out:
            self.counts.add(out["example_index"], drops)
        if self.policy.config.drop_mode == "delete":
            # The dropped tokens leave the rows (padding takes their places at the end): the
            # drop token pads, and `origin` maps the entropies the model sees back (memory).
            return delete_tokens(out, drops, self.drop_token_id)
        out["input_ids"], out["labels"] = self.policy.apply(
            out["input_ids"], out["labels"], drops, self.drop_token_id
        )
        return out

    def _entropies(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.memory is not None:
            if "example_index" not in batch:
                raise ValueError("the entropy memory needs an 'example_index' column")
            entropies = self.memory.lookup(batch["example_index"])
            batch.pop("entropies", None)
        elif "entropies" in batch:
            entropies = batch.pop("entropies")
        else:
            raise ValueError(
                "EntroDropCollator with a policy needs an 'entropies' column or a memory"
            )
        if "attention_mask" in batch:  # padding has no entropy: never a candidate
            pad = (batch["attention_mask"] == 0).to(entropies.device)
            entropies = entropies.masked_fill(pad, math.nan)
        return entropies
