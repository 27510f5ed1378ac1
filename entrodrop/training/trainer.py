"""EntroDropTrainer: a Hugging Face Trainer that drops low-entropy tokens and logs the diagnostics."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer

from entrodrop.config import EntroDropConfig
from entrodrop.metrics import SELECTABLE, trainer_key
from entrodrop.policy import IGNORE_INDEX, ORIGIN, entropy_threshold, in_scope, scope_mask
from entrodrop.runfolder import drop_state_path, latest_checkpoint
from entrodrop.scoring import causal_shift, token_entropies
from entrodrop.training.collator import BlockDataset, EntroDropCollator, ScheduleClock
from entrodrop.training.diagnostics import Diagnostics
from entrodrop.training.drops import DropCounts, DropMethod, DropPolicy, DropStats
from entrodrop.training.memory import EntropyMemory
from entrodrop.training.recording import TokenRecorder

log = logging.getLogger(__name__)

# Collator columns the model must not see.
EXTRA_COLUMNS = ("example_index", "entropies", ORIGIN)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over kept targets. logits (B, T, V) at t-1 score labels (B, T) at t."""
    predictions, targets = causal_shift(logits, labels)  # (B, T-1, V), (B, T-1)
    if not bool((targets != IGNORE_INDEX).any()):
        return logits.sum() * 0.0  # every target dropped: a zero loss that keeps the graph
    flat = predictions.reshape(-1, logits.shape[-1]).float()  # (B*(T-1), V)
    return F.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE_INDEX)


def scatter_back(
    previous: torch.Tensor, entropies: torch.Tensor, origin: torch.Tensor
) -> torch.Tensor:
    """Entropies (B, T) of closed-up rows put back at their tokens' block positions (origin,
    -1 on padding) over `previous` (B, T): positions no kept token came from keep their value."""
    out = previous.clone()
    rows, cols = torch.nonzero(origin.cpu() >= 0, as_tuple=True)
    out[rows, origin.cpu()[rows, cols]] = entropies.detach().float().cpu()[rows, cols]
    return out


def default_drop_token_id(tokenizer: Any) -> int:
    """The input mode's drop token: the tokenizer's unk, else pad, else eos id, else 0."""
    for name in ("unk_token_id", "pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return 0


class EntroDropTrainer(Trainer):
    """A ``Trainer`` with EntroDrop (or the `random` ablation) and DESIGN section 2 diagnostics.

    Extra keyword arguments: ``entrodrop`` (an :class:`EntroDropConfig`; None trains plainly),
    ``drop_method`` ("entrodrop" or "random"), ``diagnostics`` (a :class:`Diagnostics`; None keeps
    the Trainer's own ``evaluate``), ``drop_token_id`` (default: the tokenizer's unk/pad id),
    ``token_recorder`` (a :class:`TokenRecorder`: each evaluation adds a row to the run's
    per-token record; it also counts its training tokens' drops).

    Where the drop happens depends on the entropy source and the drop mode:

    - reference (any mode): in the collator, from an ``entropies`` column of the train dataset
      (a :class:`BlockDataset` built with reference entropies); tau is their q-quantile, once;
    - online + loss: in :meth:`compute_loss`, from the step's own detached logits, one forward;
    - online + input/both: in the collator, from an :class:`EntropyMemory` that
      :meth:`compute_loss` fills with each step's entropies.

    The collator must be an :class:`EntroDropCollator` (created when none is given); the trainer
    wires its policy, memory, clock and statistics.
    """

    def __init__(
        self,
        *args: Any,
        entrodrop: EntroDropConfig | None = None,
        drop_method: DropMethod = "entrodrop",
        diagnostics: Diagnostics | None = None,
        drop_token_id: int | None = None,
        token_recorder: TokenRecorder | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("data_collator") is None:
            kwargs["data_collator"] = EntroDropCollator()
        super().__init__(*args, **kwargs)
        # The collator reads its own columns (example_index, entropies) and ignores any other, so
        # the Trainer must hand it every column rather than only those model.forward accepts;
        # compute_loss removes them before the model sees the batch.
        if isinstance(self.data_collator, EntroDropCollator):
            self.args.remove_unused_columns = False
        # The losses returned here are per-batch means (the Trainer divides them by the
        # accumulation steps): one convention for the model's loss and ours.
        self.model_accepts_loss_kwargs = False
        self.diagnostics = diagnostics
        self.token_recorder = token_recorder
        self.clock = ScheduleClock()
        self.drop_stats = DropStats()
        self.policy: DropPolicy | None = None
        self.memory: EntropyMemory | None = None
        self.online_loss = False
        if entrodrop is not None:
            self._setup_drops(entrodrop, drop_method, drop_token_id)

    # ---------------------------------------------------------------- wiring

    def _setup_drops(
        self, config: EntroDropConfig, method: DropMethod, drop_token_id: int | None
    ) -> None:
        collator = self.data_collator
        if not isinstance(collator, EntroDropCollator):
            raise TypeError("EntroDropTrainer needs an EntroDropCollator as data_collator")
        self.policy = DropPolicy(config, method, rank=self.args.process_index)
        collator.clock, collator.stats, collator.deferred = self.clock, self.drop_stats, True
        collator.counts = self.drop_counts
        collator.drop_token_id = (
            drop_token_id
            if drop_token_id is not None
            else config.drop_token_id
            if config.drop_token_id is not None
            else default_drop_token_id(self.processing_class)
        )
        if config.entropy_source == "reference":
            entropies = getattr(self.train_dataset, "entropies", None)
            if entropies is None:
                raise ValueError(
                    "entropy_source 'reference' needs a BlockDataset with reference entropies "
                    "(see entrodrop.training.reference_entropies)"
                )
            # The training-set tau, once, over the tokens in the drop scope (answers by default).
            trained = getattr(self.train_dataset, "trained", None)
            self.policy.tau = entropy_threshold(in_scope(entropies, trained, config), config)
            collator.policy = self.policy
            log.info("reference source: tau = %.4f nats", self.policy.tau)
        elif config.drop_mode == "loss":
            self.online_loss = True  # drops chosen in compute_loss from the step's own logits
        else:
            dataset = self.train_dataset
            if not isinstance(dataset, BlockDataset):
                raise TypeError("the online input mode needs a BlockDataset (token rows)")
            self.memory = EntropyMemory(*dataset.blocks.shape)
            collator.policy, collator.memory = self.policy, self.memory

    @property
    def drop_counts(self) -> DropCounts | None:
        """The drop counts of the training tokens the token record follows, if any."""
        return None if self.token_recorder is None else self.token_recorder.drop_counts

    @property
    def progress(self) -> float:
        """Training progress s in [0, 1]: completed steps / total steps."""
        return self.state.global_step / max(1, self.state.max_steps)

    # ---------------------------------------------------------------- the loss

    def training_step(
        self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> Any:
        self.clock.progress = self.progress
        collator = self.data_collator
        if isinstance(collator, EntroDropCollator) and collator.policy is not None:
            # The collator's drop, applied now rather than when the DataLoader prepared the
            # batch (a step ahead): the curriculum uses this step's progress exactly.
            inputs = collator.drop(inputs, self.progress)
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        inputs = dict(inputs)
        example_index = inputs.pop("example_index", None)
        origin = inputs.pop(ORIGIN, None)  # the delete mode's map back to the block's positions
        for key in EXTRA_COLUMNS:
            inputs.pop(key, None)
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.online_loss:
            return self._online_loss(model, inputs, return_outputs, example_index)
        if self.memory is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        if example_index is None:
            raise ValueError("the online input mode needs an 'example_index' column")
        self._remember(example_index, token_entropies(outputs.logits.detach()), origin)
        return (loss, outputs) if return_outputs else loss

    def _online_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool,
        example_index: torch.Tensor | None = None,
    ) -> Any:
        """One forward pass: this step's logits choose the dropped targets and give the loss."""
        assert self.policy is not None
        labels = inputs.pop("labels")  # (B, T)
        outputs = model(**inputs)
        logits = outputs.logits  # (B, T, V)
        entropies = token_entropies(logits.detach())  # (B, T), column 0 NaN
        attention = inputs.get("attention_mask")
        if attention is not None:  # padding has no entropy: never a candidate
            entropies = entropies.masked_fill(attention == 0, math.nan)
        trained = labels != IGNORE_INDEX  # (B, T): the tokens that carry loss
        progress = self.progress
        drops = self.policy.select(entropies, progress, trained)  # (B, T); tau from this batch
        scope = scope_mask(trained, attention, self.policy.config)
        self.drop_stats.add(drops, entropies, self.policy.rate(progress), scope)
        if self.drop_counts is not None and example_index is not None:
            self.drop_counts.add(example_index, drops)
        loss = causal_lm_loss(logits, labels.masked_fill(drops, IGNORE_INDEX))
        return (loss, outputs) if return_outputs else loss

    def _remember(
        self, example_index: torch.Tensor, entropies: torch.Tensor, origin: torch.Tensor | None
    ) -> None:
        """Store this step's entropies; every process stores every process's examples.

        After a deletion (``origin``, (B, T)) the entropies are of the closed-up rows: each goes
        back to its token's place in the block, and a deleted token keeps its last known one.
        """
        assert self.memory is not None
        if self.args.world_size > 1:
            # Padded batches differ in width from rank to rank: gather at the memory's width.
            width = self.memory.values.shape[1]
            entropies = F.pad(entropies, (0, width - entropies.shape[1]), value=math.nan)
            example_index = self.accelerator.gather(example_index)
            entropies = self.accelerator.gather(entropies)
            if origin is not None:  # -1: padding, which scatter_back leaves alone
                origin = F.pad(origin, (0, width - origin.shape[1]), value=-1)
                origin = self.accelerator.gather(origin)
        if origin is not None:
            entropies = scatter_back(self.memory.lookup(example_index), entropies, origin)
        self.memory.update(example_index, entropies)

    # ---------------------------------------------------------------- logs and evaluation

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self.policy is not None:  # a training log: add the drop statistics
            sums = self.drop_stats.sums.clone()
            if self.args.world_size > 1:
                sums = self.accelerator.reduce(sums.to(self.args.device), reduction="sum").cpu()
            logs.update(DropStats.metrics(sums))
            self.drop_stats.reset()
        super().log(logs, start_time)

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        if self.diagnostics is None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        model = self.accelerator.unwrap_model(self.model)
        rank, world, recorder = self.args.process_index, self.args.world_size, self.token_recorder
        reduce = lambda t: self.accelerator.reduce(t.to(self.args.device), reduction="sum").cpu()  # noqa: E731
        ranked = () if recorder is None else recorder.ranked
        scores = self.diagnostics.score(model, rank, world, ranked)
        metrics = self.diagnostics.evaluate(model, rank, world, reduce, scores)
        if recorder is not None:
            recorder.add(self.state.global_step, scores, model, rank, world, reduce)
        self.log(dict(metrics))  # our names only: metrics.jsonl keeps the vocabulary's
        # The Trainer (best checkpoint) and EarlyStoppingCallback read metric_for_best_model
        # under "eval_" + its name; a metric this evaluation could not compute reads as NaN,
        # which never counts as an improvement.
        metrics |= {trainer_key(name): metrics.get(name, math.nan) for name in SELECTABLE}
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics

    # ---------------------------------------------------------------- checkpoints

    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: Any = None,
        ignore_keys_for_eval: list[str] | None = None,
    ) -> Any:
        if resume_from_checkpoint is True:
            found = latest_checkpoint(Path(str(self.args.output_dir)))
            resume_from_checkpoint = str(found) if found is not None else None
        if isinstance(resume_from_checkpoint, str):
            self._load_drop_state(Path(resume_from_checkpoint))
        return super().train(resume_from_checkpoint, trial, ignore_keys_for_eval)

    def _load_drop_state(self, checkpoint: Path) -> None:
        """Continue the drop generator's stream (and the entropy memory) from a checkpoint."""
        if self.policy is None:
            return
        path = drop_state_path(checkpoint, self.args.process_index)
        if not path.is_file():  # a complete checkpoint always has it (save_model writes it first)
            raise ValueError(
                f"{checkpoint.name} has no drop state for process {self.args.process_index} "
                f"({path.name}): it was not written by an EntroDrop run with these processes"
            )
        from safetensors.torch import load_file

        state = load_file(str(path))
        self.policy.generator.set_state(state["generator"])
        if self.memory is not None and "memory" in state:
            self.memory.values.copy_(state["memory"])
        counts = self.drop_counts
        if (
            counts is not None
            and state.get("drop_counts", torch.empty(0)).shape == counts.counts.shape
        ):
            counts.counts.copy_(state["drop_counts"])

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The Trainer's save, and in a checkpoint this process's drop state right after it.

        The Trainer writes a checkpoint's weights here first and its trainer_state.json last,
        and only a checkpoint with that file counts (entrodrop.runfolder); writing the drop
        state here, every process before a barrier, puts it inside that window: a kill can never
        leave a "complete" checkpoint whose resume would restart the drop generator.
        """
        super().save_model(output_dir, _internal_call)
        if not _internal_call or self.policy is None or output_dir is None:
            return
        self._save_drop_state(Path(output_dir))
        self.accelerator.wait_for_everyone()

    def _save_drop_state(self, checkpoint: Path) -> None:
        from safetensors.torch import save_file

        checkpoint.mkdir(parents=True, exist_ok=True)
        assert self.policy is not None
        tensors = {"generator": self.policy.generator.get_state()}
        if self.memory is not None:
            tensors["memory"] = self.memory.values
        if self.drop_counts is not None:
            tensors["drop_counts"] = self.drop_counts.counts
        path = drop_state_path(checkpoint, self.args.process_index)
        tmp = path.with_name(f".{path.name}.tmp")  # a kill mid-write leaves no half file behind
        save_file(tensors, str(tmp))
        tmp.replace(path)
