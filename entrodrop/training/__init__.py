"""Fine-tuning with EntroDrop through the Hugging Face ``Trainer``: collator, trainer, callbacks.

The run entry point (``train(config, run_dir)``, ``python -m entrodrop.training.run``) uses the
pieces below; a user's own script can use them directly. Modules, one idea each:

- ``collator``: ``BlockDataset`` (fixed blocks or padded examples, optional ``entropies``) and
  ``EntroDropCollator`` (labels, drop policy before the forward);
- ``trainer``: ``EntroDropTrainer`` (online drops in ``compute_loss``, drop statistics in the
  logs, diagnostics in ``evaluate``, drop-generator state in checkpoints);
- ``reference``: the frozen-model pre-pass, ``reference_entropies`` (cached on disk);
- ``diagnostics``: held-out loss overall / low- / high-entropy and general-text loss;
- ``drops``: ``DropPolicy`` (EntroDrop or the `random` ablation, seeded) and ``DropStats``;
- ``memory``: ``EntropyMemory`` for the online source in input mode;
- ``rundata``: a run's token rows (blocks, or chat examples with their trained tokens) and the
  data report;
- ``preview``: the first training batch and its drops at s = 0, 0.5, 1, through the collator;
- ``baselines``: weight decay, hidden dropout, label smoothing, NEFTune;
- ``lora``: the training model with its LoRA/QLoRA adapter (``entrodrop.adapters``), and the
  gradient checkpointing and clipping arguments;
- ``callbacks``: metrics.jsonl + subscribers, status.json, clean stop, schedule clock;
- ``run``: the entry point, `Run` passed between its steps (the run folder it writes follows
  ``entrodrop.runfolder``, the contract with the server).

Using EntroDrop in your own Trainer (more in docs/own_trainer.md):

Online entropies, loss mode (the simplest: no pre-pass, one forward pass per step)::

    from entrodrop import EntroDropConfig
    from entrodrop.training import BlockDataset, EntroDropTrainer

    trainer = EntroDropTrainer(
        model=model, args=training_args, processing_class=tokenizer,
        train_dataset=BlockDataset(blocks),            # LongTensor (N, T)
        entrodrop=EntroDropConfig(entropy_source="online", drop_mode="loss"),
    )
    trainer.train()

Reference entropies (a frozen copy of the starting model scores the data once, cached)::

    from entrodrop.training import reference_entropies
    from entrodrop.training.reference import model_fingerprint

    ent = reference_entropies(model, blocks, model_fingerprint(model_dir), torch.bfloat16)
    trainer = EntroDropTrainer(..., train_dataset=BlockDataset(blocks, ent),
                               entrodrop=EntroDropConfig(entropy_source="reference", drop_mode="input"))

A plain ``transformers.Trainer`` works with the collator alone (reference entropies only)::

    collator = EntroDropCollator(policy=DropPolicy(cfg, tau=entropy_threshold(ent, cfg)),
                                 drop_token_id=tokenizer.unk_token_id)
    Trainer(..., train_dataset=BlockDataset(blocks, ent), data_collator=collator,
            callbacks=[ScheduleCallback(collator.clock)], args=TrainingArguments(
                ..., remove_unused_columns=False))

(there the DataLoader prepares batches a step ahead, so the curriculum lags by up to one step).
"""

from __future__ import annotations

from typing import Any

from entrodrop.training.baselines import apply_hidden_dropout
from entrodrop.training.callbacks import (
    MetricsCallback,
    ScheduleCallback,
    StatusCallback,
    StopCallback,
)
from entrodrop.training.collator import BlockDataset, EntroDropCollator, ScheduleClock
from entrodrop.training.diagnostics import Diagnostics, build_diagnostics
from entrodrop.training.drops import DropPolicy, DropStats
from entrodrop.training.memory import EntropyMemory
from entrodrop.training.reference import reference_entropies
from entrodrop.training.trainer import EntroDropTrainer


def __getattr__(name: str) -> Any:
    # run.py is imported lazily: `python -m entrodrop.training.run` must not find it pre-imported.
    if name in ("train", "TrainingFailed"):
        from entrodrop.training import run

        return getattr(run, name)
    raise AttributeError(f"module 'entrodrop.training' has no attribute {name!r}")


__all__ = [
    "BlockDataset",
    "Diagnostics",
    "DropPolicy",
    "DropStats",
    "EntroDropCollator",
    "EntroDropTrainer",
    "EntropyMemory",
    "MetricsCallback",
    "ScheduleCallback",
    "ScheduleClock",
    "StatusCallback",
    "StopCallback",
    "TrainingFailed",
    "apply_hidden_dropout",
    "build_diagnostics",
    "reference_entropies",
    "train",
]
