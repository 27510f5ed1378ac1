"""Dataset specs (a built-in name or a file) to a train / held-out split, text or conversations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from entrodrop.data.builtin import (
    GENERAL_TEXT,
    PYTHON_REFERENCE,
    default_general_texts,
    python_reference_topics,
)
from entrodrop.data.errors import DataError
from entrodrop.data.files import USER_SUFFIXES, UserData, read_data_file
from entrodrop.data.formats import Conversation, DataFormat, DataFormatChoice, Example
from entrodrop.data.paths import check_path_allowed
from entrodrop.data.python_qa import PYTHON_QA, python_qa_examples

BUILTIN_DATASETS = (PYTHON_REFERENCE, PYTHON_QA, GENERAL_TEXT)
BUILTIN_FORMATS: dict[str, DataFormat] = {
    PYTHON_REFERENCE: "text",
    PYTHON_QA: "messages",
    GENERAL_TEXT: "text",
}
HELDOUT_EVERY = 5  # one topic (or document, or example) in five is held out
SHOWN_HELDOUT = 12  # held-out examples named in the split line of the run log
T = TypeVar("T", str, Conversation)


@dataclass
class DatasetTexts:
    """A plain-text dataset: what the model trains on, what it is evaluated on, how it was split."""

    name: str
    train: list[str]
    heldout: list[str]
    split: str = ""  # one line for the run log: which documents were held out and why
    format: DataFormat = "text"


@dataclass
class ChatData:
    """An instruction dataset as conversations (the internal form of every instruction format)."""

    name: str
    train: list[Conversation]
    heldout: list[Conversation]
    split: str = ""
    format: DataFormat = "messages"


Dataset = DatasetTexts | ChatData


def is_builtin(spec: str) -> bool:
    return spec in BUILTIN_DATASETS


def python_reference() -> DatasetTexts:
    """Train / held-out split of the Python reference by topic (every 5th topic held out)."""
    named = list(python_reference_topics().items())
    heldout = [t for i, (_, t) in enumerate(named) if i % HELDOUT_EVERY == 2]
    train = [t for i, (_, t) in enumerate(named) if i % HELDOUT_EVERY != 2]
    names = [n for i, (n, _) in enumerate(named) if i % HELDOUT_EVERY == 2]
    split = (
        f"{PYTHON_REFERENCE}: {len(named)} topics, {len(names)} held out (every "
        f"{HELDOUT_EVERY}th, sorted by name, from the 3rd): {', '.join(names)}"
    )
    return DatasetTexts(PYTHON_REFERENCE, train, heldout, split)


def _opening(example: Example, width: int = 40) -> str:
    """An example's first words on one line, for the log (a conversation: its first user turn)."""
    if not isinstance(example, str):
        example = next((m["content"] for m in example if m["role"] == "user"), "")
    line = " ".join(example.split())
    return repr(line if len(line) <= width else line[: width - 1] + "…")


def split_user_texts(texts: list[str], name: str) -> DatasetTexts:
    """Hold out every 5th document; a single document holds out its last ~10% of lines."""
    if len(texts) >= HELDOUT_EVERY:
        train, heldout, which = _every_fifth(texts)
        split = (
            f"{name}: {len(texts)} documents, {len(heldout)} held out (every {HELDOUT_EVERY}th): "
            f"{which}"
        )
        return DatasetTexts(name, train, heldout, split)
    joined = "\n\n".join(texts)
    cut = joined.rfind("\n", 0, int(len(joined) * 0.9))
    cut = cut if cut > 0 else int(len(joined) * 0.9)
    split = (
        f"{name}: {len(texts)} document(s), fewer than {HELDOUT_EVERY}: the last "
        f"{len(joined) - cut} of {len(joined)} characters are held out, from "
        f"{_opening(joined[cut:])}"
    )
    return DatasetTexts(name, [joined[:cut]], [joined[cut:]], split)


def _every_fifth(examples: list[T]) -> tuple[list[T], list[T], str]:
    held = [i for i in range(len(examples)) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
    train = [e for i, e in enumerate(examples) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1]
    which = "; ".join(f"#{i + 1} {_opening(examples[i])}" for i in held[:SHOWN_HELDOUT])
    if len(held) > SHOWN_HELDOUT:
        which += f"; ... ({len(held) - SHOWN_HELDOUT} more)"
    return train, [examples[i] for i in held], which


def split_conversations(conversations: list[Conversation], name: str, fmt: DataFormat) -> ChatData:
    """Hold out every 5th example; 2 to 4 examples hold out the last; 1 cannot be split."""
    n = len(conversations)
    if n < 2:
        raise DataError(
            f"{name} has 1 example: at least 2 are needed (one is held out), or name a held-out "
            "file (heldout_dataset)"
        )
    if n < HELDOUT_EVERY:
        split = f"{name}: {n} examples, fewer than {HELDOUT_EVERY}: the last one is held out"
        return ChatData(name, conversations[:-1], conversations[-1:], split, fmt)
    train, heldout, which = _every_fifth(conversations)
    split = f"{name}: {n} examples, {len(heldout)} held out (every {HELDOUT_EVERY}th): {which}"
    return ChatData(name, train, heldout, split, fmt)


def _user_path(spec: str, allowed_dirs: Sequence[str | Path] | None) -> Path:
    path = check_path_allowed(spec, allowed_dirs) if allowed_dirs is not None else Path(spec)
    if not path.exists():
        raise DataError(
            f"unknown dataset {spec!r}: use {' or '.join(BUILTIN_DATASETS)}, or a path to a "
            f"{'/'.join(USER_SUFFIXES)} file"
        )
    return path


def all_examples(
    spec: str,
    allowed_dirs: Sequence[str | Path] | None = None,
    max_text_bytes: int | None = None,
    data_format: DataFormatChoice = "auto",
) -> UserData:
    """Every example of a dataset spec, unsplit: a built-in corpus or a file."""
    if is_builtin(spec):
        fmt = BUILTIN_FORMATS[spec]
        if data_format not in ("auto", fmt):
            raise DataError(f"{spec} is {fmt} data: data_format {data_format!r} does not apply")
        if spec == PYTHON_QA:
            return UserData(spec, fmt, list(python_qa_examples()))
        texts = python_reference_topics().values() if spec == PYTHON_REFERENCE else None
        return UserData(spec, fmt, list(texts) if texts else list(default_general_texts()))
    return read_data_file(_user_path(spec, allowed_dirs), max_text_bytes, data_format)


def all_texts(
    spec: str,
    allowed_dirs: Sequence[str | Path] | None = None,
    max_text_bytes: int | None = None,
) -> list[str]:
    """Every text of a plain-text dataset spec, unsplit (a DataError for instruction data)."""
    return all_examples(spec, allowed_dirs, max_text_bytes).texts()


def general_texts(spec: str | None = None) -> list[str]:
    """Text for the forgetting check: `spec` (a file or built-in corpus, all of it), or by
    default CPython's LICENSE.txt (see entrodrop.data.builtin.default_general_texts)."""
    return default_general_texts() if spec is None else all_texts(spec)


def _split(data: UserData) -> Dataset:
    if data.is_instruction:
        return split_conversations(data.conversations(), data.name, data.format)
    if data.name == PYTHON_REFERENCE:
        return python_reference()
    return split_user_texts(data.texts(), data.name)


def split_dataset(data: UserData, held: UserData | None = None) -> Dataset:
    """Train / held-out of a dataset's examples: every 5th held out, or all train and `held` (of
    the same kind: plain text or instruction data) is evaluated."""
    if held is None:
        return _split(data)
    if held.is_instruction != data.is_instruction:
        kinds = {True: "instruction data", False: "plain text"}
        raise DataError(
            f"{held.name} is {kinds[held.is_instruction]} but {data.name} is "
            f"{kinds[data.is_instruction]}: the held-out data must be of the same kind"
        )
    unit = "examples" if data.is_instruction else "documents"
    split = (
        f"{data.name}: all {len(data.examples)} {unit} train; held out: {held.name} "
        f"({len(held.examples)} {unit})"
    )
    if data.is_instruction:
        return ChatData(data.name, data.conversations(), held.conversations(), split, data.format)
    return DatasetTexts(data.name, data.texts(), held.texts(), split)


def load_dataset(
    spec: str,
    allowed_dirs: Sequence[str | Path] | None = None,
    max_text_bytes: int | None = None,
    heldout: str | None = None,
    data_format: DataFormatChoice = "auto",
) -> Dataset:
    """A dataset spec: a built-in name or a file path (checked against allowed_dirs if given),
    its decoded text capped by `max_text_bytes` (None: ENTRODROP_MAX_TEXT_BYTES, else no cap).

    Plain text gives DatasetTexts, instruction data ChatData. With `heldout` (another spec of
    the same kind), the whole dataset trains and that one is evaluated instead of every 5th
    example. `data_format` forces the format of the files (default: detected from the keys).
    """
    data = all_examples(spec, allowed_dirs, max_text_bytes, data_format)
    held = None
    if heldout is not None:
        held = all_examples(heldout, allowed_dirs, max_text_bytes, data_format)
    return split_dataset(data, held)
