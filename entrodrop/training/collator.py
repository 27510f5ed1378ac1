"""Batches of token rows (fixed blocks, or examples padded to the batch's longest), with EntroDrop
applied where it can be before the forward.

A batch is explicit and the same for both kinds of data: ``input_ids`` (B, T), ``labels`` (B, T)
with -100 where no loss is taken (prompt and template tokens, padding), ``attention_mask`` (B, T)
when rows were padded, ``example_index`` (B,) and, for the reference source, ``entropies`` (B, T).
Padding is on the right, so a row's real tokens see exactly what they would see alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from entrodrop.data import TokenRows
from entrodrop.policy import IGNORE_INDEX, delete_tokens, scope_mask
from entrodrop.training.drops import DropCounts, DropPolicy, DropStats
from entrodrop.training.memory import EntropyMemory


class BlockDataset(Dataset[dict[str, Any]]):
    """Token rows (N, T), optionally with token-aligned reference entropies (N, T) as a column.

    Plain text: fixed blocks, every token trained. Instruction examples (``from_rows``): each item
    is cut to its own length and carries ``labels`` with -100 on the tokens that take no loss.
    """

    def __init__(
        self,
        blocks: torch.Tensor,
        entropies: torch.Tensor | None = None,
        trained: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> None:
        if entropies is not None and entropies.shape != blocks.shape:
            raise ValueError(f"entropies {tuple(entropies.shape)} != blocks {tuple(blocks.shape)}")
        self.blocks, self.entropies = blocks, entropies
        self._trained, self.lengths = trained, lengths

    @classmethod
    def from_rows(cls, rows: TokenRows, entropies: torch.Tensor | None = None) -> BlockDataset:
        """Rows as the Trainer's dataset: blocks stay whole, examples keep their own lengths."""
        if not rows.padded and bool(rows.trained[:, 1:].all()):
            return cls(rows.ids, entropies)  # plain text: labels are the ids themselves
        return cls(rows.ids, entropies, rows.trained, rows.lengths)

    @property
    def trained(self) -> torch.Tensor:
        """(N, T) bool: the tokens that carry loss (every token of a plain-text block)."""
        if self._trained is not None:
            return self._trained
        return torch.ones_like(self.blocks, dtype=torch.bool)

    def __len__(self) -> int:
        return int(self.blocks.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        end = None if self.lengths is None else int(self.lengths[i])
        item: dict[str, Any] = {"input_ids": self.blocks[i, :end], "example_index": i}
        if self._trained is not None:
            item["labels"] = self.blocks[i, :end].masked_fill(~self._trained[i, :end], IGNORE_INDEX)
        if self.entropies is not None:
            item["entropies"] = self.entropies[i, :end]
        return item


@dataclass
class ScheduleClock:
    """Training progress s in [0, 1], set by the training loop and read by the collator."""

    progress: float = 0.0


def _stack(
    features: Sequence[Mapping[str, Any]], key: str, dtype: torch.dtype, pad: float
) -> torch.Tensor:
    """The rows of one column, right-padded with `pad` to the longest: (B, T)."""
    rows = [torch.as_tensor(f[key], dtype=dtype) for f in features]
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad, dtype=dtype)
    for b, row in enumerate(rows):
        out[b, : len(row)] = row
    return out


@dataclass
class EntroDropCollator:
    """Stack token rows into a causal-LM batch and apply the drop policy to it.

    Features are dicts with ``input_ids`` (T,), optionally ``labels``, ``attention_mask``,
    ``example_index`` and token-aligned ``entropies`` (T,) (NaN = unknown, never dropped). Rows of
    different lengths are padded on the right to the longest (``pad_token_id``, label -100,
    attention 0, entropy NaN): padding-free of cross-example attention, and what a length-grouped
    sampler keeps small (docs/data.md). The drop scope follows the labels: with
    ``drop_scope: trained`` only tokens whose label is not -100 can be dropped.
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
    pad_token_id: int = 0
    counts: DropCounts | None = None  # the token record's followed training tokens

    def __post_init__(self) -> None:
        if self.drop_token_id < 0 or self.pad_token_id < 0:
            raise ValueError("drop_token_id and pad_token_id must be token ids (>= 0)")

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        return self.torch_call(features)

    def torch_call(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids = _stack(features, "input_ids", torch.long, self.pad_token_id)  # (B, T)
        lengths = [len(f["input_ids"]) for f in features]
        labels = (
            _stack(features, "labels", torch.long, IGNORE_INDEX)
            if "labels" in features[0]
            else input_ids.masked_fill(_padding(lengths, input_ids.shape[1]), IGNORE_INDEX)
        )
        batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "labels": labels}
        if "attention_mask" in features[0]:
            batch["attention_mask"] = _stack(features, "attention_mask", torch.long, 0)
        elif len(set(lengths)) > 1:
            batch["attention_mask"] = (~_padding(lengths, input_ids.shape[1])).long()
        if "example_index" in features[0]:
            batch["example_index"] = torch.tensor([int(f["example_index"]) for f in features])
        if "entropies" in features[0]:
            batch["entropies"] = _stack(features, "entropies", torch.float32, math.nan)
        if self.policy is not None and not self.deferred:
            batch = self.drop(batch, self.clock.progress)
        return batch

    def select(
        self, batch: dict[str, torch.Tensor], progress: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's drops (B, T) at progress s and the entropies they were chosen from (B, T);
        takes the ``entropies`` column out of `batch`. The candidates are in the drop scope of
        the labels: with ``drop_scope: trained`` only tokens whose label is not -100."""
        if self.policy is None:
            raise ValueError("EntroDropCollator.select needs a policy")
        entropies = self._entropies(batch).to(batch["input_ids"].device)  # (B, T)
        trained = batch["labels"] != IGNORE_INDEX  # (B, T): the tokens that carry loss
        drops = self.policy.select(entropies, progress, trained)  # (B, T) bool
        if self.stats is not None:
            scope = scope_mask(trained, batch.get("attention_mask"), self.policy.config)
            self.stats.add(drops, entropies, self.policy.rate(progress), scope)
        return drops, entropies

    def drop(self, batch: Mapping[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        """Apply the policy at training progress s: a new batch without the ``entropies`` column."""
        if self.policy is None:
            raise ValueError("EntroDropCollator.drop needs a policy")
        out = dict(batch)
        drops, _ = self.select(out, progress)
        if self.counts is not None and "example_index" in out:
            self.counts.add(out["example_index"], drops)
        if self.policy.config.drop_mode == "delete":
            # The dropped tokens leave the rows (padding takes their places at the end, with
            # label -100 and attention 0), and `origin` maps the entropies the model sees back.
            return delete_tokens(out, drops, self.pad_token_id)
        out["input_ids"], out["labels"] = self.policy.apply(
            out["input_ids"], out["labels"], drops, self.drop_token_id
        )
        return out

    def _entropies(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.memory is not None:
            if "example_index" not in batch:
                raise ValueError("the entropy memory needs an 'example_index' column")
            entropies = self.memory.lookup(batch["example_index"], batch["input_ids"].shape[1])
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


def _padding(lengths: Sequence[int], width: int) -> torch.Tensor:
    """(B, T) bool: True on the padding after each row's own length."""
    return torch.arange(width)[None, :] >= torch.tensor(lengths)[:, None]
