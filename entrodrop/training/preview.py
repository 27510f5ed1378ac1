"""The first training batch as a run sees it, and the tokens its policy drops at s = 0, 0.5 and 1.

Built by the training code itself: the rows come from the run's own data functions (blocks of
plain text, or instruction examples through the chat template with their trained mask), the batch
from ``EntroDropCollator`` and the drops from its ``select``, so the preview shows exactly what
the collator does (tests pin the two together). Three layers per token for the pages: trained or
not (prompt and template tokens are not), the starting model's entropy, the drops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from entrodrop.config import DROPPING_METHODS, DropMethod, RunConfig
from entrodrop.data import (
    ChatData,
    DatasetTexts,
    TokenRows,
    build_blocks,
    check_trainable,
    load_dataset,
    tokenize_conversations,
)
from entrodrop.data.examples import token_rows
from entrodrop.models import LoadedModel
from entrodrop.policy import drop_rate, entropy_threshold, in_scope
from entrodrop.scoring import score_ids
from entrodrop.training.collator import BlockDataset, EntroDropCollator
from entrodrop.training.drops import DropPolicy

PROGRESS_POINTS = (0.0, 0.5, 1.0)
MAX_ROWS = 4  # rows of the batch shown: enough to see the pattern, fast to score
MAX_TOKENS = 256  # tokens per row shown
CHAT_LOOKAHEAD = 8  # conversations rendered per row wanted (some may be left out)


@dataclass
class PreviewRows:
    """The first rows of the training data, with per-token facts for the pages."""

    rows: TokenRows
    tokens: list[list[dict[str, Any]]]  # per row: index, id, text, trained, role, segment
    examples: list[dict[str, Any]] = field(default_factory=list)  # per row: source, truncated


def _first_texts(texts: list[str], chars: int) -> list[str]:
    """Just enough leading documents to fill the batch: tokenising the whole corpus is wasted."""
    out, total = [], 0
    for text in texts:
        out.append(text)
        total += len(text)
        if total >= chars:
            break
    return out


def _text_rows(data: DatasetTexts, tokenizer: Any, config: RunConfig, n: int) -> PreviewRows:
    length = min(config.seq_len, MAX_TOKENS)
    # ~8 characters per token leaves a wide margin for a one-block-per-row batch.
    cap = (
        n * length if config.max_train_tokens is None else min(n * length, config.max_train_tokens)
    )
    blocks = build_blocks(_first_texts(data.train, n * length * 8), tokenizer, length, cap)[:n]
    rows = TokenRows.from_blocks(blocks)
    tokens = []
    for b, row in enumerate(blocks.tolist()):
        tokens.append(
            [
                {
                    "index": t,
                    "id": tid,
                    "text": tokenizer.decode([tid]),
                    "trained": bool(rows.trained[b, t]),
                    "role": None,
                    "segment": "text",
                }
                for t, tid in enumerate(row)
            ]
        )
    return PreviewRows(rows, tokens, [{"source": None, "truncated": False} for _ in tokens])


def _chat_rows(
    data: ChatData, tokenizer: Any, config: RunConfig, n: int, model_name: str
) -> PreviewRows:
    """The first training examples as a run renders them (same function), cut for display."""
    length = min(config.seq_len, MAX_TOKENS)
    first = data.train[: n * CHAT_LOOKAHEAD]
    examples = tokenize_conversations(
        first, tokenizer, config.seq_len, config.train_on, config.truncation, model_name, True
    )
    check_trainable(examples, f"{data.name} (its first {len(first)} examples)", config.seq_len)
    examples.ids = [ids[:length] for ids in examples.ids[:n]]
    examples.trained = [mask[:length] for mask in examples.trained[:n]]
    rows = TokenRows.from_examples(examples, tokenizer.pad_token_id or 0)
    shown = examples.rendered[:n]
    tokens = [token_rows(tokenizer, r)[:length] for r in shown]
    info = [
        {"source": examples.source[b], "truncated": len(r.ids) > length}
        for b, r in enumerate(shown)
    ]
    return PreviewRows(rows, tokens, info)


def preview_rows(
    config: RunConfig, tokenizer: Any, model_name: str, data: Any = None
) -> PreviewRows:
    """The first rows of the run's training split (at most MAX_ROWS, batch_size); `data`: the
    run's dataset when the caller read it already (the server reads users' files in a child)."""
    n = min(config.batch_size, MAX_ROWS)
    if data is None:
        data = load_dataset(
            config.dataset, heldout=config.heldout_dataset, data_format=config.data_format
        )
    if isinstance(data, ChatData):
        return _chat_rows(data, tokenizer, config, n, model_name)
    return _text_rows(data, tokenizer, config, n)


def preview_drops(
    config: RunConfig, rows: TokenRows, entropies: torch.Tensor
) -> tuple[list[torch.Tensor], float]:
    """The collator's drops over rows at each of PROGRESS_POINTS, and tau (over these rows).

    One freshly seeded policy per point, as at the start of training: the same uniform draws at
    every s, so the tokens dropped at s = 0.5 are also dropped at s = 1.
    """
    ed = config.entrodrop
    dataset = BlockDataset.from_rows(rows, entropies)
    collator = EntroDropCollator(pad_token_id=0)
    batch = collator([dataset[i] for i in range(len(dataset))])
    trained = batch["labels"] != -100
    tau = entropy_threshold(in_scope(batch["entropies"], trained, ed), ed)
    if config.method not in DROPPING_METHODS:
        none = torch.zeros_like(batch["input_ids"], dtype=torch.bool)
        return [none for _ in PROGRESS_POINTS], tau
    masks = []
    method: DropMethod = "random" if config.method == "random" else "entrodrop"
    for s in PROGRESS_POINTS:
        collator.policy = DropPolicy(ed, method, tau=tau)
        masks.append(collator.select(dict(batch), s)[0])
    return masks, tau


def first_batch(loaded: LoadedModel, config: RunConfig, data: Any = None) -> dict[str, Any]:
    """Score the first rows of the training data and apply the policy at three progress points
    (`data`: the run's dataset, when read already).

    Raises ModelLoadError or DataError (messages for a person).
    """
    shown = preview_rows(config, loaded.tokenizer, loaded.name, data)
    rows = shown.rows
    ids = [rows.ids[b, : int(rows.lengths[b])].tolist() for b in range(len(rows))]
    arrays = score_ids(loaded, ids, top_k=0)
    entropies = torch.full(rows.ids.shape, math.nan)  # (B, T), NaN at t = 0 and on padding
    for b, a in enumerate(arrays):
        entropies[b, : len(a.entropy)] = a.entropy
    masks, tau = preview_drops(config, rows, entropies)
    return _result(config, loaded.name, shown, entropies, masks, tau)


def _result(
    config: RunConfig,
    model: str,
    shown: PreviewRows,
    entropies: torch.Tensor,
    masks: list[torch.Tensor],
    tau: float,
) -> dict[str, Any]:
    ed = config.entrodrop
    drops_apply = config.method in DROPPING_METHODS
    out_rows = []
    for b, tokens in enumerate(shown.tokens):
        for token in tokens:
            t = token["index"]
            e = float(entropies[b, t])
            token["entropy"] = None if math.isnan(e) else round(e, 3)
            token["dropped"] = [bool(m[b, t]) for m in masks]
        out_rows.append(tokens)
    return {
        "model": model,
        "method": config.method,
        "drops_apply": drops_apply,
        "tau": tau if math.isfinite(tau) else None,
        "n_tokens": shown.rows.n_tokens,
        "n_trained": int(shown.rows.trained.sum()),
        "train_on": config.train_on,
        "drop_scope": ed.drop_scope,
        "instruction": any(r["source"] is not None for r in shown.examples),
        "points": [
            {
                "progress": s,
                "rate": drop_rate(s, ed) if drops_apply else 0.0,
                "n_dropped": int(m.sum()),
            }
            for s, m in zip(PROGRESS_POINTS, masks, strict=True)
        ],
        "rows": out_rows,
        "examples": shown.examples,
        "note": "These are the first rows of the training data, scored by the starting model; "
        "the Trainer shuffles them, so its first batch holds others of the same kind. Here tau "
        "is taken over these rows' tokens in the drop scope; training takes it over all "
        "training tokens. Tokens that are not trained (prompt and chat template) carry no loss "
        "and, with drop_scope 'trained', are never dropped.",
    }
