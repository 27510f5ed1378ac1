"""The baseline regularisers, applied through the same training entry so only the method differs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from entrodrop.config import DEFAULT_BASELINE_STRENGTH, RunConfig

log = logging.getLogger(__name__)

# Config fields that hold a dropout probability, across common causal-LM architectures.
DROPOUT_FIELDS = (
    "attention_dropout",
    "hidden_dropout",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "dropout",
)
# Output projections of the attention and MLP branches in Llama-family blocks (Llama, Mistral,
# Qwen, Gemma...): dropout on their outputs is GPT-2's residual dropout (resid_pdrop).
RESIDUAL_PROJECTIONS = ("o_proj", "down_proj")
ADAPTER_PART = "lora_"  # peft's LoRA submodules (lora_A, lora_B, lora_dropout...)


def baseline_strength(config: RunConfig) -> float:
    """The configured strength, or the default for this baseline (0 for the other methods)."""
    if config.baseline_strength is not None:
        return config.baseline_strength
    return DEFAULT_BASELINE_STRENGTH.get(config.method, 0.0)


def training_arguments(config: RunConfig) -> dict[str, Any]:
    """TrainingArguments fields a baseline sets: AdamW decay, label smoothing, NEFTune noise."""
    strength = baseline_strength(config)
    if config.method == "weight_decay":
        return {"weight_decay": strength}
    if config.method == "label_smoothing":
        return {"label_smoothing_factor": strength}
    if config.method == "neftune":
        return {"neftune_noise_alpha": strength}
    return {}


@dataclass
class DropoutPatch:
    """What :func:`apply_hidden_dropout` changed, so the saved model keeps its original config."""

    config_values: dict[str, Any] = field(default_factory=dict)
    module_values: list[tuple[nn.Module, str, Any]] = field(default_factory=list)
    hooks: list[Any] = field(default_factory=list)

    def undo(self, model: Any) -> None:
        for name, value in self.config_values.items():
            setattr(model.config, name, value)
        for module, attr, value in self.module_values:
            setattr(module, attr, value)
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()


def _dropout_hook(p: float) -> Any:
    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return F.dropout(output, p, training=module.training)
        return output

    return hook


def apply_hidden_dropout(model: Any, p: float) -> DropoutPatch:
    """Turn on dropout with probability p in a loaded model (it is active in train mode only).

    Sets every dropout field of the config and the matching module attributes and nn.Dropout
    layers. Llama-family models have no hidden-state dropout at all (only ``attention_dropout``),
    so where the model has no nn.Dropout layer, forward hooks add dropout on the outputs of the
    attention and MLP output projections (``o_proj``, ``down_proj``): residual dropout.
    """
    patch = DropoutPatch()
    for name in DROPOUT_FIELDS:
        if isinstance(getattr(model.config, name, None), (int, float)):
            patch.config_values[name] = getattr(model.config, name)
            setattr(model.config, name, p)
    n_dropout = 0
    for name, module in model.named_modules():
        if ADAPTER_PART in name:
            continue  # a LoRA adapter's own dropout keeps its configured p
        if isinstance(module, nn.Dropout):
            patch.module_values.append((module, "p", module.p))
            module.p = p
            n_dropout += 1
        elif isinstance(getattr(module, "attention_dropout", None), float):
            patch.module_values.append((module, "attention_dropout", module.attention_dropout))
            module.attention_dropout = p
    if n_dropout == 0:
        for name, module in model.named_modules():
            if name.rsplit(".", 1)[-1] in RESIDUAL_PROJECTIONS:
                patch.hooks.append(module.register_forward_hook(_dropout_hook(p)))
        if not patch.hooks:
            log.warning(
                "hidden_dropout: no dropout layer or residual projection found in %s",
                type(model).__name__,
            )
    log.info(
        "hidden_dropout p=%.3g: %d config fields, %d dropout layers, %d residual hooks",
        p,
        len(patch.config_values),
        n_dropout,
        len(patch.hooks),
    )
    return patch
