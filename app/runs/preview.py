"""Preview of a run's first training batch: which tokens the policy drops at s = 0, 0.5 and 1."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from app.model_service import ModelService
from app.runs.schemas import PreviewPoint, RunPreview
from entrodrop.config import DROPPING_METHODS, RunConfig
from entrodrop.data import (
    PYTHON_REFERENCE,
    DatasetTexts,
    build_blocks,
    is_builtin,
    load_dataset,
)
from entrodrop.models import LoadedModel
from entrodrop.policy import drop_rate, entropy_threshold, select_drops, select_random_drops
from entrodrop.sandbox import limits_for, run_isolated
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
    """Computes previews on the model service: one model cache and one worker thread for all
    scoring, Inspect's and the previews' alike."""

    def __init__(self, model_service: Callable[[], ModelService]) -> None:
        self._model_service = model_service

    async def preview(self, config: RunConfig) -> RunPreview:
        """Never in the event loop: loading and scoring take the service's worker thread."""
        service = self._model_service()
        return await service.run(self.compute, service.get, config)

    def compute(self, get_model: Callable[[str], LoadedModel], config: RunConfig) -> RunPreview:
        """Score the first rows of the training data and apply the policy at three progress points.

        Raises ModelLoadError or DataError (messages for a person).
        """
        loaded = get_model(config.model)
        rows = min(config.batch_size, MAX_ROWS)
        length = min(config.seq_len, MAX_TOKENS)
        data = self._dataset(config)
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

    def _dataset(self, config: RunConfig) -> DatasetTexts:
        """The run's data; a user's file is read in a memory-limited child (it may lie about
        its size) within the server's decoded-text budget."""
        specs = (config.dataset, config.heldout_dataset or PYTHON_REFERENCE)
        if all(is_builtin(spec) for spec in specs):
            return load_dataset(config.dataset, heldout=config.heldout_dataset)
        budget = self._model_service().settings.text_budget
        read = partial(
            load_dataset, config.dataset, max_text_bytes=budget, heldout=config.heldout_dataset
        )
        return run_isolated(read, name=Path(config.dataset).name, limits=limits_for(budget))

    @staticmethod
    def _result(
        config: RunConfig, loaded: LoadedModel, ids: list[list[int]], entropies: torch.Tensor
    ) -> RunPreview:
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
        return RunPreview(
            model=loaded.name,
            method=method,
            drops_apply=drops_apply,
            tau=tau if math.isfinite(tau) else None,
            n_tokens=n_valid + len(ids),
            points=[
                PreviewPoint(
                    progress=s,
                    rate=drop_rate(s, ed) if drops_apply else 0.0,
                    n_dropped=int(m.sum()),
                )
                for s, m in zip(PROGRESS_POINTS, masks, strict=True)
            ],
            rows=rows_out,
            note="These are the first blocks of the training data, scored by the starting "
            "model; the Trainer shuffles blocks, so its first batch holds others of the same kind. "
            "Here tau is taken over these rows; training takes it over all training tokens.",
        )
