"""Preview of a run's first training batch: which tokens the policy drops at s = 0, 0.5 and 1."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import torch

from entrodrop.config import RunConfig
from entrodrop.data import build_blocks, load_dataset
from entrodrop.models import LoadedModel, load
from entrodrop.policy import drop_rate, entropy_threshold, select_drops, select_random_drops
from entrodrop.scoring import score_ids

PROGRESS_POINTS = (0.0, 0.5, 1.0)
MAX_ROWS = 4  # rows of the batch shown: enough to see the pattern, fast to score
MAX_TOKENS = 256  # tokens per row shown


def _first_texts(texts: list[str], chars: int) -> list[str]:
    """Just enough leading documents to fill the batch: tokenising the whole corpus is wasted."""
    out, total = [], 0
    for text in texts:
        out.append(text)
        total += len(text)
        if total >= chars:
            break
    return out


class PreviewService:
    """Keeps the last previewed model loaded, so repeated previews take well under a second."""

    def __init__(self, allowed_dirs: list[Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self.allowed_dirs = allowed_dirs

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._loaded = None

    async def preview(self, config: RunConfig) -> dict[str, Any]:
        """Run in a worker thread: loading and scoring must not block the event loop."""
        return await asyncio.to_thread(self.compute, config)

    def _model(self, spec: str) -> LoadedModel:
        if self._loaded is None or self._loaded.spec != spec:
            self._loaded = None  # free the old model before loading the next
            self._loaded = load(spec, device="cpu")
        return self._loaded

    def compute(self, config: RunConfig) -> dict[str, Any]:
        """Score the first rows of the first batch and apply the policy at three progress points.

        Raises ModelLoadError or DataError (messages for a person).
        """
        with self._lock:
            loaded = self._model(config.model)
            rows = min(config.batch_size, MAX_ROWS)
            length = min(config.seq_len, MAX_TOKENS)
            data = load_dataset(config.dataset)
            # ~8 characters per token leaves a wide margin for a one-block-per-row batch.
            texts = _first_texts(data.train, rows * length * 8)
            cap = rows * length
            if config.max_train_tokens is not None:
                cap = min(cap, config.max_train_tokens)
            blocks = build_blocks(texts, loaded.tokenizer, length, max_tokens=cap)  # (N, T)
            ids = [row.tolist() for row in blocks[:rows]]
            arrays = score_ids(loaded, ids, top_k=0)
            entropies = torch.stack([a.entropy for a in arrays])  # (B, T), NaN at t = 0
            return self._result(config, loaded, ids, entropies)

    @staticmethod
    def _result(
        config: RunConfig, loaded: LoadedModel, ids: list[list[int]], entropies: torch.Tensor
    ) -> dict[str, Any]:
        ed = config.entrodrop
        method = config.method
        tau = entropy_threshold(entropies, ed)
        masks = []
        for s in PROGRESS_POINTS:
            # One seeded generator per point, as at the start of training: the same uniform draws
            # at every s, so the tokens dropped at s = 0.5 are also dropped at s = 1.
            gen = torch.Generator().manual_seed(ed.seed)
            if method == "entrodrop":
                drops = select_drops(entropies, ed, s, gen, tau=tau)
            elif method == "random":
                drops = select_random_drops(entropies, ed, s, gen, tau=tau)
            else:
                drops = torch.zeros_like(entropies, dtype=torch.bool)
            masks.append(drops)
        tok = loaded.tokenizer
        pieces: dict[int, str] = {}
        rows_out = []
        for b, row in enumerate(ids):
            tokens = []
            for t, tid in enumerate(row):
                if tid not in pieces:
                    pieces[tid] = tok.decode([tid])
                e = float(entropies[b, t])
                tokens.append(
                    {
                        "text": pieces[tid],
                        "entropy": None if math.isnan(e) else round(e, 3),
                        "dropped": [bool(m[b, t]) for m in masks],
                    }
                )
            rows_out.append(tokens)
        drops_apply = method in ("entrodrop", "random")
        n_valid = int(torch.isfinite(entropies).sum())
        return {
            "model": loaded.name,
            "method": method,
            "drops_apply": drops_apply,
            "tau": tau if math.isfinite(tau) else None,
            "n_tokens": n_valid + len(ids),
            "points": [
                {
                    "progress": s,
                    "rate": drop_rate(s, ed) if drops_apply else 0.0,
                    "n_dropped": int(m.sum()),
                }
                for s, m in zip(PROGRESS_POINTS, masks, strict=True)
            ],
            "rows": rows_out,
            "note": "Entropies come from the starting model; tau is taken over these rows, while "
            "training takes it over all training tokens.",
        }
