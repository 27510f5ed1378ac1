"""Training data: the built-in offline corpora, users' files, and fixed-length token blocks."""

from __future__ import annotations

import json
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

PYTHON_REFERENCE = "python-reference"
GENERAL_TEXT = "general-text"
BUILTIN_DATASETS = (PYTHON_REFERENCE, GENERAL_TEXT)
USER_SUFFIXES = (".txt", ".jsonl", ".parquet")
HELDOUT_EVERY = 5  # one topic (or document) in five is held out


class DataError(ValueError):
    """A dataset that cannot be used, with a message meant for a person."""


@dataclass
class DatasetTexts:
    """A dataset as texts: what the model trains on and what it is evaluated on."""

    name: str
    train: list[str]
    heldout: list[str]


# ---------------------------------------------------------------- built-in corpora


def python_reference_topics() -> dict[str, str]:
    """The Python language reference that ships with CPython: 79 topics, ~465K characters."""
    import pydoc_data.topics

    return dict(sorted(pydoc_data.topics.topics.items()))


def python_reference() -> DatasetTexts:
    """Train / held-out split of the Python reference by topic (every 5th topic held out)."""
    topics = list(python_reference_topics().values())
    heldout = [t for i, t in enumerate(topics) if i % HELDOUT_EVERY == 2]
    train = [t for i, t in enumerate(topics) if i % HELDOUT_EVERY != 2]
    return DatasetTexts(PYTHON_REFERENCE, train, heldout)


def general_texts() -> list[str]:
    """General English prose for the forgetting check: CPython's LICENSE.txt (history and terms).

    It ships with every CPython install and is far from the Python reference's style; where a
    distribution strips it, the Zen of Python stands in (short, so the check is noisier).
    """
    path = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
        return [p.strip() for p in text.split("\n\n\n") if p.strip()]
    import codecs
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this
    return [codecs.decode(this.s, "rot13")]


# ---------------------------------------------------------------- user files


def _decode(raw: bytes, name: str) -> str:
    if b"\x00" in raw[:8192]:
        raise DataError(f"{name} looks like a binary file, not text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not UTF-8 text (byte {exc.start})") from exc


def parse_text_file(raw: bytes, name: str) -> list[str]:
    """Texts from the bytes of a .txt, .jsonl (a `text` field per line) or .parquet file."""
    suffix = Path(name).suffix.lower()
    if suffix not in USER_SUFFIXES:
        raise DataError(f"{name}: unsupported file type; use one of {', '.join(USER_SUFFIXES)}")
    if not raw.strip():
        raise DataError(f"{name} is empty")
    if suffix == ".txt":
        texts = _split_documents(_decode(raw, name))
    elif suffix == ".jsonl":
        texts = _parse_jsonl(_decode(raw, name), name)
    else:
        texts = _parse_parquet(raw, name)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise DataError(f"{name} has no text")
    return texts


def _split_documents(text: str) -> list[str]:
    # Documents separated by two or more blank lines; a file without them is one document.
    parts = [p for p in text.split("\n\n\n") if p.strip()]
    return parts or [text]


def _parse_jsonl(text: str, name: str) -> list[str]:
    texts = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{name} line {lineno}: not valid JSON ({exc.msg})") from exc
        except RecursionError as exc:
            raise DataError(f"{name} line {lineno}: JSON nested too deeply") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise DataError(f"{name} line {lineno}: expected an object with a string 'text' field")
        texts.append(row["text"])
    return texts


def _parse_parquet(raw: bytes, name: str) -> list[str]:
    import io

    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{name} is not a readable parquet file") from exc
    if "text" not in table.column_names:
        raise DataError(f"{name} has no 'text' column (columns: {', '.join(table.column_names)})")
    values = table.column("text").to_pylist()
    if not all(v is None or isinstance(v, str) for v in values):
        raise DataError(f"{name}: the 'text' column must hold strings")
    return [v for v in values if v]


def read_user_file(path: str | Path) -> list[str]:
    """Texts of a user's .txt / .jsonl / .parquet file, with a clear error for unusable files."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"no such file: {path}")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_text_file(raw, p.name)


def check_path_allowed(path: str | Path, allowed_dirs: Sequence[str | Path]) -> Path:
    """Resolve a user-named path (symlinks followed) and refuse it unless inside an allowed folder."""
    if not allowed_dirs:
        raise DataError("naming files by path is disabled on this server (no allowed folders)")
    raw = str(path)
    if "\x00" in raw:
        raise DataError("invalid path")
    candidate = Path(raw).expanduser()
    for base in allowed_dirs:
        root = Path(base).expanduser().resolve()
        full = (root / candidate).resolve() if not candidate.is_absolute() else candidate.resolve()
        if full == root or root in full.parents:
            return full
    raise DataError(f"{raw} is outside the allowed data folders")


def split_user_texts(texts: list[str], name: str) -> DatasetTexts:
    """Hold out every 5th document; a single document holds out its last ~10% of lines."""
    if len(texts) >= HELDOUT_EVERY:
        heldout = [t for i, t in enumerate(texts) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
        train = [t for i, t in enumerate(texts) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1]
        return DatasetTexts(name, train, heldout)
    joined = "\n\n".join(texts)
    cut = joined.rfind("\n", 0, int(len(joined) * 0.9))
    cut = cut if cut > 0 else int(len(joined) * 0.9)
    return DatasetTexts(name, [joined[:cut]], [joined[cut:]])


def load_dataset(spec: str, allowed_dirs: Sequence[str | Path] | None = None) -> DatasetTexts:
    """A dataset spec: a built-in name or a file path (checked against allowed_dirs if given)."""
    if spec == PYTHON_REFERENCE:
        return python_reference()
    if spec == GENERAL_TEXT:
        texts = general_texts()
        return split_user_texts(texts, GENERAL_TEXT)
    path = check_path_allowed(spec, allowed_dirs) if allowed_dirs is not None else Path(spec)
    if not path.exists():
        raise DataError(
            f"unknown dataset {spec!r}: use {' or '.join(BUILTIN_DATASETS)}, or a path to a "
            f"{'/'.join(USER_SUFFIXES)} file"
        )
    return split_user_texts(read_user_file(path), path.name)


# ---------------------------------------------------------------- token blocks


def tokenize_texts(texts: Sequence[str], tokenizer: Any) -> list[int]:
    """All texts as one token stream, documents separated by the EOS token."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    batch = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    for ids in batch:
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
    return stream


def build_blocks(
    texts: Sequence[str], tokenizer: Any, seq_len: int, max_tokens: int | None = None
) -> torch.Tensor:
    """Cut the token stream into fixed-length blocks: LongTensor (N, seq_len); the tail is dropped."""
    if seq_len < 2:
        raise DataError("seq_len must be at least 2")
    stream = tokenize_texts(texts, tokenizer)
    if max_tokens is not None:
        stream = stream[:max_tokens]
    n_blocks = len(stream) // seq_len
    if n_blocks == 0:
        raise DataError(
            f"the data has {len(stream)} tokens, too few for one block of {seq_len}; "
            "use a shorter sequence length or more text"
        )
    return torch.tensor(stream[: n_blocks * seq_len], dtype=torch.long).view(n_blocks, seq_len)


def fingerprint_blocks(blocks: torch.Tensor) -> str:
    """A short content hash of a block tensor, for cache keys."""
    import hashlib

    return hashlib.sha256(blocks.numpy().tobytes()).hexdigest()[:16]


def uploads_dir(home: str | Path) -> Path:
    """Where the dashboard keeps uploaded dataset files."""
    return Path(home) / "uploads"


def is_builtin(spec: str) -> bool:
    return spec in BUILTIN_DATASETS


__all__ = [
    "BUILTIN_DATASETS",
    "DataError",
    "DatasetTexts",
    "build_blocks",
    "check_path_allowed",
    "fingerprint_blocks",
    "general_texts",
    "is_builtin",
    "load_dataset",
    "parse_text_file",
    "python_reference",
    "read_user_file",
    "split_user_texts",
    "tokenize_texts",
    "uploads_dir",
]
