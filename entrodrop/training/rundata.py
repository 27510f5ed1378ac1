"""A run's data as token rows: plain text in fixed blocks, instruction examples through the chat
template (with their trained tokens), the held-out and general-text rows, and the data report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from entrodrop.config import RunConfig
from entrodrop.data import (
    ChatData,
    Conversation,
    DataError,
    TokenRows,
    all_examples,
    build_blocks,
    check_trainable,
    data_report,
    general_texts,
    load_dataset,
    tokenize_conversations,
)

log = logging.getLogger("entrodrop.training")


@dataclass
class RunData:
    """Token rows of one run: training, held-out (capped) and general text (capped, optional),
    and the `data` report of the dataset (summary.json's "data", `entrodrop data --json`)."""

    train: TokenRows  # (N, T)
    heldout: TokenRows  # (H, T)
    general: TokenRows | None  # (G, T)
    report: dict[str, Any] = field(default_factory=dict)


def _blocks(
    texts: Sequence[str], tokenizer: Any, config: RunConfig, what: str, cap: int | None
) -> TokenRows:
    try:
        blocks = build_blocks(texts, tokenizer, config.seq_len, max_tokens=cap)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from exc
    return TokenRows.from_blocks(blocks)


def _examples(
    conversations: Sequence[Conversation], tokenizer: Any, config: RunConfig, what: str, name: str
) -> TokenRows:
    """Instruction examples through the model's chat template, cut or left out past seq_len."""
    examples = tokenize_conversations(
        conversations, tokenizer, config.seq_len, config.train_on, config.truncation, name
    )
    check_trainable(examples, what, config.seq_len)
    log.info(
        "%s: %d examples, %d longer than seq_len %d (%s), %d left out; %d tokens, %d trained",
        what,
        examples.n_examples,
        examples.truncated,
        config.seq_len,
        config.truncation,
        examples.dropped,
        examples.tokens,
        examples.trained_tokens,
    )
    return TokenRows.from_examples(examples, tokenizer.pad_token_id or 0)


def describe_report(report: dict[str, Any]) -> str:
    """The data report in one line for the run log."""
    share = report["trained_tokens"] / max(1, report["tokens"])
    return (
        f"{report['format']} format, {report['examples']} examples, {report['tokens']} tokens, "
        f"{report['trained_tokens']} trained ({share:.1%}; train_on {report['train_on']}), "
        f"{report['truncated']} longer than seq_len {report['seq_len']}, "
        f"{report['dropped']} left out"
    )


def load_run_data(config: RunConfig, tokenizer: Any, model_name: str = "the model") -> RunData:
    """The run's token rows; the log says the format, the counts and which examples are held out."""
    texts = load_dataset(
        config.dataset, heldout=config.heldout_dataset, data_format=config.data_format
    )
    log.info("data split: %s", texts.split)
    report = data_report(
        all_examples(config.dataset, data_format=config.data_format),
        tokenizer,
        config.seq_len,
        config.train_on,
        config.truncation,
        model_name,
    )
    log.info("data: %s", describe_report(report))
    cap = config.max_eval_tokens
    if isinstance(texts, ChatData):
        train = _examples(texts.train, tokenizer, config, "training data", model_name)
        heldout = _examples(texts.heldout, tokenizer, config, "held-out data", model_name)
        train = train.head_tokens(config.max_train_tokens)
    else:
        train = _blocks(texts.train, tokenizer, config, "training data", config.max_train_tokens)
        heldout = _blocks(texts.heldout, tokenizer, config, "held-out data", None)
    return RunData(
        train=train,
        heldout=heldout.evenly_spaced(cap),
        general=_general_rows(config, tokenizer, cap, model_name),
        report=report,
    )


def _general_rows(
    config: RunConfig, tokenizer: Any, cap: int | None, model_name: str
) -> TokenRows | None:
    """The forgetting check's rows: a named file must work; the default may be missing."""
    if config.general_dataset is not None:
        data = all_examples(config.general_dataset)
        kind = "examples" if data.is_instruction else "documents"
        log.info("general text: %s (%d %s)", config.general_dataset, len(data.examples), kind)
        if data.is_instruction:
            rows = _examples(data.conversations(), tokenizer, config, "general text", model_name)
            return rows.evenly_spaced(cap)
        return _blocks(data.texts(), tokenizer, config, "general text", None).evenly_spaced(cap)
    try:
        general = _blocks(general_texts(), tokenizer, config, "general text", None)
    except DataError as exc:
        log.warning("no general-text loss: %s", exc)
        return None
    return general.evenly_spaced(cap)
