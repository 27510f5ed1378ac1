"""What this machine can run: launcher processes, and a training batch's memory estimated from the
model's config, so that a request for more is a clear 422 instead of an out-of-memory kill."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from app.hub import is_hub_id
from entrodrop import runfolder as rf
from entrodrop.models import default_checkpoint_dir

# Used when a model's config cannot be read here (a hub id not cached): a small GPT-2-like model.
FALLBACK_SHAPE = {"vocab_size": 50_257, "hidden_size": 768, "num_hidden_layers": 12}
FP32 = 4
# Bytes per parameter while training in fp32: weights, gradients, AdamW's two moments.
TRAIN_BYTES_PER_PARAM = 4 * FP32
# Per token: logits, their softmax/entropy and their gradient (~4 vocab-sized fp32 vectors).
VOCAB_COPIES = 4
# Per token and layer, in 16-bit units (Korthikanti et al. 2022, no recomputation): 34h + 5as.
ACT_PER_HIDDEN = 34
ACT_PER_HEAD_POSITION = 5


@dataclass(frozen=True)
class ModelShape:
    """The few config numbers that decide a training step's memory."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    context: int | None  # max_position_embeddings, when the config says

    @property
    def params(self) -> int:
        """A rough parameter count: embeddings plus ~12 h^2 per layer."""
        return self.vocab * self.hidden + self.layers * 12 * self.hidden * self.hidden


def _int(config: dict[str, Any], key: str, default: int | None) -> int | None:
    value = config.get(key, default)
    return value if isinstance(value, int) and value > 0 else default


def shape_from(config: dict[str, Any]) -> ModelShape:
    """A ModelShape from a Hugging Face config dict (fallback values for missing keys)."""
    hidden = _int(config, "hidden_size", FALLBACK_SHAPE["hidden_size"]) or 1
    return ModelShape(
        vocab=_int(config, "vocab_size", FALLBACK_SHAPE["vocab_size"]) or 1,
        hidden=hidden,
        layers=_int(config, "num_hidden_layers", FALLBACK_SHAPE["num_hidden_layers"]) or 1,
        heads=_int(config, "num_attention_heads", max(1, hidden // 64)) or 1,
        context=_int(config, "max_position_embeddings", None),
    )


def config_path(spec: str, runs_path: Path) -> Path | None:
    """Where a checked model spec's config.json lies on this machine, if it does."""
    if spec == "default":
        return default_checkpoint_dir() / "config.json"
    if spec.startswith(rf.RUN_SPEC_PREFIX):
        try:
            run_id, which = rf.parse_run_spec(spec)
            found = rf.run_checkpoint(runs_path / run_id, which)
        except ValueError:
            return None
        return found / "config.json"
    if is_hub_id(spec) and not Path(spec).exists():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(spec, "config.json")
        except Exception:  # an id the hub's own rules refuse: nothing cached under it
            return None
        return Path(cached) if isinstance(cached, str) else None
    return Path(spec) / "config.json"


def model_shape(spec: str, runs_path: Path) -> ModelShape:
    """The model's shape from its config.json; a fallback shape when it cannot be read here."""
    path = config_path(spec, runs_path)
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        config = {}
    return shape_from(config if isinstance(config, dict) else {})


def step_bytes(shape: ModelShape, batch_size: int, seq_len: int) -> int:
    """Estimated memory of one training process's step: the model's state plus activations."""
    per_layer = 2 * (ACT_PER_HIDDEN * shape.hidden + ACT_PER_HEAD_POSITION * shape.heads * seq_len)
    per_token = VOCAB_COPIES * FP32 * shape.vocab + shape.layers * per_layer
    return shape.params * TRAIN_BYTES_PER_PARAM + batch_size * seq_len * per_token


def device_count() -> int:
    """CUDA devices, 0 without CUDA."""
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def max_processes() -> int:
    """Processes this machine runs side by side: one per CUDA device, else one per CPU core."""
    return device_count() or (os.cpu_count() or 1)


def memory_bytes() -> int:
    """Memory one training process can use: a CUDA device's memory, else the machine's RAM."""
    if device_count():
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)
    return int(psutil.virtual_memory().total)
