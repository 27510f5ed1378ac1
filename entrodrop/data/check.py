"""Everything about a run's data that can fail, checked without model weights or a run folder:
the files, their formats, the split, the model's chat template and a trainable example."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from entrodrop.config import RunConfig
from entrodrop.data.datasets import ChatData, Dataset, all_examples, split_dataset
from entrodrop.data.errors import DataError
from entrodrop.data.examples import data_report, tokenize_conversations
from entrodrop.data.files import UserData
from entrodrop.data.formats import Conversation
from entrodrop.models import load_tokenizer


def first_trainable(
    conversations: Sequence[Conversation],
    tokenizer: object,
    config: RunConfig,
    model_name: str,
    what: str,
) -> None:
    """Render until one example keeps a trained token within seq_len (usually the first); a
    DataError when none does. Also fails on a missing chat template."""
    truncated = 0
    for messages in conversations:
        found = tokenize_conversations(
            [messages], tokenizer, config.seq_len, config.train_on, config.truncation, model_name
        )
        if found.ids:
            return
        truncated += found.truncated
    raise DataError(
        f"{what}: no example has a trained token within seq_len {config.seq_len} ({truncated} of "
        f"{len(conversations)} examples are longer than that); raise seq_len"
    )


def _renders(data: ChatData, config: RunConfig, tokenizer: object, name: str) -> None:
    first_trainable(data.train, tokenizer, config, name, f"{data.name} (training examples)")
    first_trainable(data.heldout, tokenizer, config, name, f"{data.name} (held-out examples)")


def check_chat_data(data: ChatData, config: RunConfig, runs_dir: Path | None = None) -> None:
    """The model's tokenizer renders the training and held-out examples, each with an answer."""
    tokenizer, name = load_tokenizer(config.model, runs_dir)
    _renders(data, config, tokenizer, name)


def check_run_data(
    config: RunConfig, runs_dir: Path | None = None, max_text_bytes: int | None = None
) -> Dataset:
    """Read every data file of a run config and check what training would need, the model's
    tokenizer included (a missing model fails here too); returns the split. Raises DataError or
    ModelLoadError, messages naming the place."""
    tokenizer, name = load_tokenizer(config.model, runs_dir)
    data = all_examples(config.dataset, None, max_text_bytes, config.data_format)
    held = None
    if config.heldout_dataset is not None:
        held = all_examples(config.heldout_dataset, None, max_text_bytes, config.data_format)
    if config.general_dataset is not None:
        all_examples(config.general_dataset, None, max_text_bytes)
    split = split_dataset(data, held)
    if isinstance(split, ChatData):
        _renders(split, config, tokenizer, name)
    return split


def run_data_report(
    config: RunConfig,
    runs_dir: Path | None = None,
    max_text_bytes: int | None = None,
    examples: UserData | None = None,
) -> dict[str, Any]:
    """The `data` report of a run config's dataset with its model's tokenizer: the object
    `entrodrop data --json` prints and the run's summary.json will hold (`examples`: the
    dataset's, when the caller read them already)."""
    tokenizer, name = load_tokenizer(config.model, runs_dir)
    if examples is None:
        examples = all_examples(config.dataset, None, max_text_bytes, config.data_format)
    return data_report(
        examples, tokenizer, config.seq_len, config.train_on, config.truncation, name
    )
