"""The reference pre-pass: a frozen starting model scores token blocks once, cached on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from entrodrop.data import fingerprint_blocks
from entrodrop.paths import cache_dir
from entrodrop.precision import autocast_context
from entrodrop.scoring import causal_shift, predicted_tokens, token_entropies
from entrodrop.threads import cpu_threads

log = logging.getLogger(__name__)

EVAL_BATCH_TOKENS = 1024  # tokens per forward pass: bounds the (B, T, V) logits in memory
_SAMPLE_BYTES = 1 << 20  # bytes hashed from each end of a weights file


class Cancelled(Exception):
    """A stop was requested while the run was still preparing."""


@dataclass
class TokenStats:
    """Token-aligned per-token results of one forward pass over blocks; column 0 is NaN."""

    entropy: torch.Tensor  # (N, T) float32
    loss: torch.Tensor | None = None  # (N, T) float32, cross-entropy of the true token
    rank: torch.Tensor | None = None  # (N, T) float32, rank of the true token (1 = top)


def _token_losses(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Token-aligned cross-entropy (B, T): logits at t-1 score token t; column 0 is NaN."""
    b, t, v = logits.shape
    out = torch.full((b, t), math.nan, dtype=torch.float32, device=logits.device)
    predictions, targets = causal_shift(logits, ids)  # (B, T-1, V), (B, T-1)
    losses = F.cross_entropy(
        predictions.reshape(-1, v).float(), targets.reshape(-1), reduction="none"
    )
    predicted_tokens(out)[:] = losses.view(b, t - 1)
    return out


def _token_ranks(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Token-aligned rank of the true token (B, T): 1 + how many logits beat it; column 0 NaN."""
    b, t, _ = logits.shape
    out = torch.full((b, t), math.nan, dtype=torch.float32, device=logits.device)
    predictions, targets = causal_shift(logits, ids)  # (B, T-1, V), (B, T-1)
    true = predictions.gather(-1, targets.unsqueeze(-1))  # (B, T-1, 1)
    predicted_tokens(out)[:] = (predictions > true).sum(dim=-1).float() + 1.0
    return out


def forward_token_stats(
    model: Any,
    blocks: torch.Tensor,
    autocast_dtype: torch.dtype | None,
    with_loss: bool = False,
    batch_tokens: int = EVAL_BATCH_TOKENS,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    with_rank: bool = False,
) -> TokenStats:
    """Entropy (and loss, and the true token's rank) of every token of blocks (N, T) under the
    model, in eval mode.

    ``should_stop`` is asked before each batch (a stop raises :class:`Cancelled`); ``progress``
    hears (batches done, batches in all) before the first batch and after each one.
    """
    device = next(model.parameters()).device
    n, t = blocks.shape
    batch = max(1, batch_tokens // t)
    entropy = torch.full((n, t), math.nan)
    loss = torch.full((n, t), math.nan) if with_loss else None
    rank = torch.full((n, t), math.nan) if with_rank else None
    batches = math.ceil(n / batch)
    if progress is not None:
        progress(0, batches)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast_context(device, autocast_dtype), cpu_threads(device):
            for start in range(0, n, batch):
                if should_stop is not None and should_stop():
                    raise Cancelled("stopped during the reference pre-pass")
                ids = blocks[start : start + batch].to(device)  # (b, T)
                logits = model(input_ids=ids).logits  # (b, T, V)
                entropy[start : start + batch] = token_entropies(logits).cpu()
                if loss is not None:
                    loss[start : start + batch] = _token_losses(logits, ids).cpu()
                if rank is not None:
                    rank[start : start + batch] = _token_ranks(logits, ids).cpu()
                if progress is not None:
                    progress(start // batch + 1, batches)
    finally:
        model.train(was_training)
    return TokenStats(entropy, loss, rank)


def model_fingerprint(path: str | Path) -> str:
    """A content fingerprint of a checkpoint: its config and a sample of each weights file."""
    h = hashlib.sha256()
    folder = Path(path)
    if not folder.is_dir():  # a hub id: the name is all we know without downloading
        h.update(str(path).encode())
        return h.hexdigest()[:16]
    config = folder / "config.json"
    if config.is_file():
        h.update(config.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        size = weights.stat().st_size
        h.update(f"{weights.name}:{size}".encode())
        with open(weights, "rb") as f:
            h.update(f.read(_SAMPLE_BYTES))
            f.seek(max(0, size - _SAMPLE_BYTES))
            h.update(f.read(_SAMPLE_BYTES))
    return h.hexdigest()[:16]


def _cache_path(model_fp: str, blocks: torch.Tensor, precision: str) -> Path:
    n, t = blocks.shape
    key = json.dumps([model_fp, fingerprint_blocks(blocks), n, t, precision])
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_dir() / "reference" / f"entropies-{digest}.safetensors"


def _save_atomic(tensor: torch.Tensor, path: Path, meta: dict[str, str]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file({"entropy": tensor.contiguous()}, tmp, metadata=meta)
        os.replace(tmp, path)  # readers never see a half-written file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path, shape: torch.Size) -> torch.Tensor | None:
    from safetensors.torch import load_file

    try:
        tensor = load_file(str(path))["entropy"]
    except Exception as exc:  # a damaged cache file is recomputed, not fatal
        log.warning("ignoring unreadable cache file %s: %s", path, exc)
        return None
    return tensor if tensor.shape == shape else None


def reference_entropies(
    model: Any,
    blocks: torch.Tensor,
    model_fp: str,
    autocast_dtype: torch.dtype | None,
    should_stop: Callable[[], bool] | None = None,
    label: str = "blocks",
    progress: Callable[[str, int, int], None] | None = None,
) -> torch.Tensor:
    """Token-aligned entropies (N, T) of blocks under the starting model, cached on disk.

    Keyed by the model's fingerprint, the blocks' content (hence seq_len) and the precision, so a
    second run on the same model and data reads the file instead of scoring again. Call it on the
    main process first (``TrainingArguments.main_process_first``) so ranks do not race.
    ``progress(label, batches done, batches)`` follows the scoring (not called on a cache hit).
    """
    precision = "fp32" if autocast_dtype is None else str(autocast_dtype).replace("torch.", "")
    path = _cache_path(model_fp, blocks, precision)
    if path.is_file():
        cached = _load(path, blocks.shape)
        if cached is not None:
            log.info(
                "reference entropies (%s, %d blocks): cached %s", label, len(blocks), path.name
            )
            return cached
    log.info(
        "reference entropies (%s, %d blocks): scoring with the starting model", label, len(blocks)
    )
    report = None if progress is None else lambda done, total: progress(label, done, total)
    entropy = forward_token_stats(
        model, blocks, autocast_dtype, should_stop=should_stop, progress=report
    ).entropy
    _save_atomic(entropy, path, {"model": model_fp, "precision": precision, "label": label})
    return entropy
