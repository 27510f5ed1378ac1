"""Preview of a run's first training batch: which tokens the policy drops at s = 0, 0.5 and 1."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from app.model_service import run_model_dir
from entrodrop.config import DROPPING_METHODS, RunConfig
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
    """Computes previews on the Inspect page's model service when there is one (one model cache,
    one worker thread for all scoring), else on its own one-model cache in a worker thread."""

    def __init__(self, runs_path: Path, model_service: Callable[[], Any] | None = None) -> None:
        self.runs_path = runs_path
        self._model_service = model_service or (lambda: None)
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._loaded = None

    async def preview(self, config: RunConfig) -> dict[str, Any]:
        """Never in the event loop: loading and scoring take a worker thread."""
        service = self._model_service()
        if service is not None:
            return await service.run(self.compute, service.get, config)  # type: ignore[no-any-return]
        return await asyncio.to_thread(self.compute, self._own_model, config)

    def _own_model(self, spec: str) -> LoadedModel:
        with self._lock:
            if self._loaded is None or self._loaded.spec != spec:
                self._loaded = None  # free the old model before loading the next
                where = spec
                if spec.startswith("run:"):  # runs of this server's home, not ENTRODROP_HOME's
                    where = str(run_model_dir(self.runs_path, spec[4:]))
                loaded = load(where, device="cpu")
                loaded.spec = spec
                self._loaded = loaded
            return self._loaded

    def compute(self, get_model: Callable[[str], LoadedModel], config: RunConfig) -> dict[str, Any]:
        """Score the first rows of the training data and apply the policy at three progress points.

        Raises ModelLoadError or DataError (messages for a person).
        """
        loaded = get_model(config.model)
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
        drops_apply = method in DROPPING_METHODS
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
            "note": "These are the first blocks of the training data, scored by the starting "
            "model; the Trainer shuffles blocks, so its first batch holds others of the same kind. "
            "Here tau is taken over these rows; training takes it over all training tokens.",
        }
