"""How much disk a run takes, before it starts: computed from the parameter count and the
checkpoint policy, and the free space under the home folder.

A run folder holds, at its largest: the checkpoints the run keeps (`save_total_limit`, plus the
best one when it is not among them: the estimate counts it), one more while a new one is written
before the oldest is rotated away, and the final model. A
checkpoint holds the trained weights (float32: training loads the model in float32), AdamW's two
moments per trainable parameter when it can be resumed (`optimizer.pt`, 8 bytes a parameter), the
tokenizer, the drop state (the entropy memory of an online input-mode run: 4 bytes a training
token) and a few small files. An adapter run saves only the adapter's weights and state.
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from entrodrop.config import DROPPING_METHODS, RunConfig

FP32 = 4
ADAM_BYTES_PER_PARAM = 2 * FP32  # exp_avg and exp_avg_sq
# Small files in every checkpoint, measured on a tiny run: rng_state.pth (14 KB),
# training_args.bin (5 KB), scheduler.pt, trainer_state.json, configs, the drop generator.
CHECKPOINT_FIXED_BYTES = 32_000
PER_TENSOR_BYTES = 330  # torch.save's overhead per optimizer tensor (two per parameter tensor)
RUN_FILES_BYTES = 20_000  # metrics.jsonl, log.txt, status.json, summary.json of a short run
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja")  # fmt: skip


@dataclass(frozen=True)
class CheckpointPolicy:
    """What a run saves: how many checkpoints stay, whether they can be resumed, the model."""

    checkpoints: bool  # save_checkpoints
    keep: int  # checkpoints kept at most: save_total_limit, plus the best beside them
    optimizer_state: bool  # resumable checkpoints carry optimizer.pt; weights-only ones do not
    final_model: bool  # save_model


def checkpoint_policy(config: RunConfig) -> CheckpointPolicy:
    """The policy a config asks for: the checkpoints kept (the best may be one more than
    `save_total_limit`: entrodrop.training.best keeps it beside the last), weights only or not."""
    keep = config.save_total_limit + 1
    return CheckpointPolicy(
        config.save_checkpoints, keep, not config.save_only_model, config.save_model
    )


@dataclass(frozen=True)
class ModelSize:
    """Parameters and tensors of a model, and the bytes of its tokenizer files."""

    params: int
    tensors: int
    tokenizer_bytes: int
    measured: bool  # from the checkpoint's own files (else from its config)


def _safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header: dict[str, Any] = json.loads(f.read(n))
    return header


def _count_files(folder: Path) -> tuple[int, int] | None:
    """(elements, tensors) summed over a folder's *.safetensors headers (no weights read)."""
    files = sorted(folder.glob("*.safetensors"))
    files = [f for f in files if not f.name.startswith(("adapter_", "entrodrop_state"))]
    if not files:
        return None
    elements = tensors = 0
    for f in files:
        for name, info in _safetensors_header(f).items():
            if name != "__metadata__":
                count = 1
                for d in info["shape"]:
                    count *= int(d)
                elements, tensors = elements + count, tensors + 1
    return elements, tensors


def params_from_config(cfg: dict[str, Any]) -> tuple[int, int]:
    """(parameters, tensors) of a decoder-only transformer from its config (Llama's layout:
    attention with grouped key/value heads, a gated MLP, two norms a layer)."""
    h = int(cfg.get("hidden_size") or cfg.get("n_embd") or 768)
    layers = int(cfg.get("num_hidden_layers") or cfg.get("n_layer") or 12)
    vocab = int(cfg.get("vocab_size") or 50_257)
    heads = int(cfg.get("num_attention_heads") or cfg.get("n_head") or max(1, h // 64))
    kv = int(cfg.get("num_key_value_heads") or heads) * (h // heads)
    inter = int(cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * h)
    gated = 3 if cfg.get("intermediate_size") else 2
    per_layer = 2 * h * h + 2 * h * kv + gated * h * inter + 2 * h
    embeddings = vocab * h * (1 if cfg.get("tie_word_embeddings", True) else 2)
    return embeddings + layers * per_layer + h, 2 + layers * (7 + 2)


def model_size(folder: Path | None) -> ModelSize:
    """The size of a local checkpoint folder: exact from its safetensors headers, else from its
    config.json, else a small GPT-2's."""
    counted = _count_files(folder) if folder and folder.is_dir() else None
    tok = (
        sum((folder / n).stat().st_size for n in TOKENIZER_FILES if (folder / n).is_file())
        if folder and folder.is_dir()
        else 0
    )
    if counted is not None:
        return ModelSize(counted[0], counted[1], tok, measured=True)
    cfg: dict[str, Any] = {}
    if folder is not None and (folder / "config.json").is_file():
        try:
            cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cfg = {}
    params, tensors = params_from_config(cfg if isinstance(cfg, dict) else {})
    return ModelSize(params, tensors, tok or 2_000_000, measured=False)


def adapter_params(config: RunConfig, cfg: dict[str, Any]) -> int:
    """LoRA parameters: r x (inputs + outputs) of every adapted linear layer (Llama's names)."""
    assert config.adapter is not None
    h = int(cfg.get("hidden_size") or 768)
    heads = int(cfg.get("num_attention_heads") or max(1, h // 64))
    kv = int(cfg.get("num_key_value_heads") or heads) * (h // heads)
    inter = int(cfg.get("intermediate_size") or 4 * h)
    sides = {"q_proj": h + h, "k_proj": h + kv, "v_proj": h + kv, "o_proj": h + h,
             "gate_proj": h + inter, "up_proj": h + inter, "down_proj": inter + h}  # fmt: skip
    targets = config.adapter.target_modules
    names = list(sides) if targets == "all-linear" else [t.rsplit(".", 1)[-1] for t in targets]
    per_layer = sum(sides.get(n, 2 * h) for n in names)
    return config.adapter.r * per_layer * int(cfg.get("num_hidden_layers") or 12)


@dataclass(frozen=True)
class DiskEstimate:
    """Bytes a run's folder will hold: at its largest, and when it ends."""

    checkpoint_bytes: int  # one checkpoint
    checkpoints_saved: int
    checkpoints_kept: int
    model_bytes: int  # the final model/ (0 when not saved)
    peak_bytes: int
    final_bytes: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def run_disk(
    config: RunConfig, size: ModelSize, steps: int, train_tokens: int, model_config: dict[str, Any]
) -> DiskEstimate:
    """The disk a run with this config takes (see the module docstring for what is counted)."""
    policy = checkpoint_policy(config)
    adapter = config.adapter is not None
    trainable = adapter_params(config, model_config) if adapter else size.params
    weights = FP32 * trainable
    memory = (
        FP32 * train_tokens
        if config.method in DROPPING_METHODS
        and config.entrodrop.entropy_source == "online"
        and config.entrodrop.drop_mode in ("input", "both")
        else 0
    )
    optimizer = (
        ADAM_BYTES_PER_PARAM * trainable + 2 * size.tensors * PER_TENSOR_BYTES
        if policy.optimizer_state
        else 0
    )
    checkpoint = weights + optimizer + memory + size.tokenizer_bytes + CHECKPOINT_FIXED_BYTES
    saved = steps // max(1, config.eval_every) if policy.checkpoints else 0
    kept = min(policy.keep, saved)
    model = weights + size.tokenizer_bytes + 2_000 if policy.final_model else 0
    # A new checkpoint is written before the oldest is rotated away; the model comes last.
    peak = max(min(policy.keep + 1, saved) * checkpoint, kept * checkpoint + model)
    return DiskEstimate(
        checkpoint_bytes=checkpoint,
        checkpoints_saved=saved,
        checkpoints_kept=kept,
        model_bytes=model,
        peak_bytes=peak + RUN_FILES_BYTES,
        final_bytes=kept * checkpoint + model + RUN_FILES_BYTES,
    )


def free_bytes(folder: Path) -> int:
    """Free bytes on the file system that holds `folder` (or its nearest existing parent)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return int(shutil.disk_usage(folder).free)
