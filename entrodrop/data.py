"""Training data: the built-in offline corpora, users' files, and fixed-length token blocks."""

from __future__ import annotations

import io
import json
import os
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from entrodrop.paths import PathError, expand_user, resolve_user_path

PYTHON_REFERENCE = "python-reference"
GENERAL_TEXT = "general-text"
BUILTIN_DATASETS = (PYTHON_REFERENCE, GENERAL_TEXT)
USER_SUFFIXES = (".txt", ".jsonl", ".parquet")
HELDOUT_EVERY = 5  # one topic (or document) in five is held out


class DataError(ValueError):
    """A dataset that cannot be used, with a message meant for a person."""


@dataclass
class DatasetTexts:
    """A dataset as texts: what the model trains on, what it is evaluated on, and how it was split."""

    name: str
    train: list[str]
    heldout: list[str]
    split: str = ""  # one line for the run log: which documents were held out and why


# ---------------------------------------------------------------- built-in corpora


def python_reference_topics() -> dict[str, str]:
    """The Python language reference that ships with CPython: 79 topics, ~465K characters."""
    import pydoc_data.topics

    return dict(sorted(pydoc_data.topics.topics.items()))


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


def general_texts(spec: str | None = None) -> list[str]:
    """Text for the forgetting check: `spec` (a user's file or a built-in corpus, all of it), or
    by default CPython's LICENSE.txt (history and terms).

    LICENSE.txt ships with every CPython install and is far from the Python reference's style
    (but close to legal text: such corpora should name their own general text); where a
    distribution strips it, the Zen of Python stands in (short, so the check is noisier).
    """
    if spec is not None:
        return all_texts(spec)
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

# Decoded text allowed per dataset, as a multiple of the server's upload cap: a parquet file of
# a few KB can declare gigabytes of text (dictionary pages, zstd), so bytes alone bound nothing.
TEXT_BUDGET_PER_UPLOAD_BYTE = 4
# The server tells its training processes the budget through this variable (its own setting
# ENTRODROP_MAX_TEXT_BYTES); unset, as for `entrodrop train` on a user's own files, means no cap.
TEXT_BUDGET_ENV = "ENTRODROP_MAX_TEXT_BYTES"
PARQUET_BATCH_ROWS = 256  # rows decoded at once: memory follows the batch, not the file


class DataTooLarge(DataError):
    """A dataset whose decoded text is over the budget (the server answers 413)."""


def env_text_budget() -> int | None:
    """The decoded-text budget from ENTRODROP_MAX_TEXT_BYTES, or None (no cap) when unset."""
    value = os.environ.get(TEXT_BUDGET_ENV, "").strip()
    if not value:
        return None
    try:
        return max(1, int(value))
    except ValueError as exc:
        raise DataError(f"{TEXT_BUDGET_ENV}={value!r} is not a number of bytes") from exc


def _too_large(name: str, budget: int) -> DataTooLarge:
    return DataTooLarge(
        f"{name} holds more than {budget} bytes of text, the limit for a dataset here "
        f"({TEXT_BUDGET_ENV})"
    )


def _decode(raw: bytes, name: str, where: str = "") -> str:
    if b"\x00" in raw[:8192]:
        raise DataError(f"{name} looks like a binary file, not text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not UTF-8 text ({where}byte {exc.start})") from exc


def parse_text_file(raw: bytes, name: str, max_text_bytes: int | None = None) -> list[str]:
    """Texts from the bytes of a .txt, .jsonl (a `text` field per line) or .parquet file.

    `max_text_bytes` caps the decoded text (None: ENTRODROP_MAX_TEXT_BYTES, else no cap); over
    it, DataTooLarge is raised before the text is materialised.
    """
    if not raw.strip():
        raise DataError(f"{name} is empty")
    return _parse_stream(io.BytesIO(raw), len(raw), name, max_text_bytes)


def _parse_stream(stream: BinaryIO, size: int, name: str, budget: int | None) -> list[str]:
    suffix = Path(name).suffix.lower()
    if suffix not in USER_SUFFIXES:
        raise DataError(f"{name}: unsupported file type; use one of {', '.join(USER_SUFFIXES)}")
    budget = env_text_budget() if budget is None else budget
    if suffix == ".txt":
        if budget is not None and size > budget:  # UTF-8 text decodes to as many bytes
            raise _too_large(name, budget)
        text = _decode(stream.read(), name)
        if not text.strip():
            raise DataError(f"{name} is empty")
        texts = _split_documents(text)
    elif suffix == ".jsonl":
        texts = _parse_jsonl(stream, name, budget)
    else:
        texts = _parse_parquet(stream, name, budget)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise DataError(f"{name} has no text")
    return texts


def _split_documents(text: str) -> list[str]:
    # Documents separated by two or more blank lines; a file without them is one document.
    # Windows line ends count too (a CRLF file would otherwise be one document).
    text = text.replace("\r\n", "\n")
    parts = [p for p in text.split("\n\n\n") if p.strip()]
    return parts or [text]


def _parse_jsonl(stream: BinaryIO, name: str, budget: int | None) -> list[str]:
    """One JSON object per line, read a line at a time: no line longer than the budget is read."""
    texts: list[str] = []
    used = 0
    limit = -1 if budget is None else budget + 64_000  # a line's JSON around its text
    for lineno, raw_line in enumerate(iter(lambda: stream.readline(limit), b""), start=1):
        if limit > 0 and len(raw_line) >= limit and not raw_line.endswith(b"\n"):
            raise _too_large(name, budget or 0)
        line = _decode(raw_line, name, f"line {lineno}, ")
        if not line.strip():
            continue
        text = _jsonl_text(line, name, lineno)
        used += len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if budget is not None and used > budget:
            raise _too_large(name, budget)
        texts.append(text)
    return texts


def _jsonl_text(line: str, name: str, lineno: int) -> str:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name} line {lineno}: not valid JSON ({exc.msg})") from exc
    except RecursionError as exc:
        raise DataError(f"{name} line {lineno}: JSON nested too deeply") from exc
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise DataError(f"{name} line {lineno}: expected an object with a string 'text' field")
    return row["text"]


def _parse_parquet(stream: BinaryIO, name: str, budget: int | None) -> list[str]:
    """The `text` column, a batch of rows at a time, its decoded size checked before decoding.

    The column is read dictionary-encoded, so a bomb (one huge value repeated by reference)
    costs its dictionary and indices, and its size is known before any string is built.
    """
    import pyarrow as pa

    try:
        schema = _open_parquet(stream).schema_arrow
        if "text" not in schema.names:
            raise DataError(f"{name} has no 'text' column (columns: {', '.join(schema.names)})")
        parquet = _open_parquet(stream, dictionary=["text"])
        schema = parquet.schema_arrow
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{name} is not a readable parquet file") from exc
    kind = schema.field("text").type
    kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"{name}: the 'text' column must hold strings")
    declared = _declared_text_bytes(parquet.metadata)
    if budget is not None and declared > budget:
        raise _too_large(name, budget)  # refused from the footer alone, nothing decompressed
    texts: list[str] = []
    used = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=["text"]):
            column = batch.column(0)
            used += _decoded_bytes(column)
            if budget is not None and used > budget:
                raise _too_large(name, budget)
            texts.extend(v for v in column.to_pylist() if v)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{name} is not a readable parquet file ({exc})") from exc
    return texts


def _open_parquet(stream: BinaryIO, dictionary: list[str] | None = None) -> Any:
    import pyarrow.parquet as pq

    stream.seek(0)
    return pq.ParquetFile(stream, read_dictionary=dictionary)


def _declared_text_bytes(metadata: Any) -> int:
    """What the footer says the `text` column takes once decompressed (pages, not values)."""
    total = 0
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        for j in range(group.num_columns):
            chunk = group.column(j)
            if chunk.path_in_schema == "text":
                total += max(0, chunk.total_uncompressed_size)
    return total


def _decoded_bytes(column: Any) -> int:
    """UTF-8 bytes of a string column's values, computed on lengths only (never the strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        lengths = pc.binary_length(column.dictionary)
        total = pc.sum(pc.take(lengths, column.indices)).as_py()
    else:
        total = pc.sum(pc.binary_length(column)).as_py()
    return int(total or 0)


def read_user_file(path: str | Path, max_text_bytes: int | None = None) -> list[str]:
    """Texts of a user's .txt / .jsonl / .parquet file, with a clear error for unusable files.

    The file is streamed (parquet by batches, jsonl by lines) against `max_text_bytes`
    (None: ENTRODROP_MAX_TEXT_BYTES, else no cap).
    """
    p = expand_user(path)
    if not p.is_file():
        raise DataError(f"no such file: {path}")
    try:
        with p.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size == 0:
                raise DataError(f"{p.name} is empty")
            return _parse_stream(stream, size, p.name, max_text_bytes)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc


NAME_MAX = 255  # characters in one file or folder name (Linux, macOS, Windows alike)
PATH_MAX = 4096


def check_name_lengths(spec: str) -> None:
    """Refuse a model or dataset name the file system could not even look up (a DataError)."""
    too_long = next((p for p in Path(spec).parts if len(p) > NAME_MAX), None)
    if too_long is not None:
        raise DataError(
            f"the name {too_long[:40]}... has {len(too_long)} characters; a file or folder "
            f"name has at most {NAME_MAX}"
        )
    if len(spec) > PATH_MAX:
        raise DataError(f"the path has {len(spec)} characters; at most {PATH_MAX} are allowed")


def check_path_allowed(path: str | Path, allowed_dirs: Sequence[str | Path]) -> Path:
    """Resolve a user-named path (symlinks followed) and refuse it unless inside an allowed folder."""
    if not allowed_dirs:
        raise DataError("naming files by path is disabled on this server (no allowed folders)")
    raw = str(path)
    try:
        candidate = expand_user(raw)
        roots = [resolve_user_path(base) for base in allowed_dirs]
        fulls = [resolve_user_path(root / candidate) for root in roots]  # absolute: candidate
    except PathError as exc:
        raise DataError(str(exc)) from exc
    for root, full in zip(roots, fulls, strict=True):
        if full == root or root in full.parents:
            return full
    raise DataError(f"{raw} is outside the allowed data folders")


def _opening(text: str, width: int = 40) -> str:
    """A document's first words on one line, for the log."""
    line = " ".join(text.split())
    return repr(line if len(line) <= width else line[: width - 1] + "…")


def split_user_texts(texts: list[str], name: str) -> DatasetTexts:
    """Hold out every 5th document; a single document holds out its last ~10% of lines."""
    if len(texts) >= HELDOUT_EVERY:
        held = [i for i in range(len(texts)) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
        heldout = [texts[i] for i in held]
        train = [t for i, t in enumerate(texts) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1]
        which = "; ".join(f"#{i + 1} {_opening(texts[i])}" for i in held)
        split = (
            f"{name}: {len(texts)} documents, {len(held)} held out (every {HELDOUT_EVERY}th): "
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


def _user_path(spec: str, allowed_dirs: Sequence[str | Path] | None) -> Path:
    path = check_path_allowed(spec, allowed_dirs) if allowed_dirs is not None else Path(spec)
    if not path.exists():
        raise DataError(
            f"unknown dataset {spec!r}: use {' or '.join(BUILTIN_DATASETS)}, or a path to a "
            f"{'/'.join(USER_SUFFIXES)} file"
        )
    return path


def all_texts(
    spec: str,
    allowed_dirs: Sequence[str | Path] | None = None,
    max_text_bytes: int | None = None,
) -> list[str]:
    """Every text of a dataset spec, unsplit (a held-out or general-text file)."""
    if spec == PYTHON_REFERENCE:
        return list(python_reference_topics().values())
    if spec == GENERAL_TEXT:
        return general_texts()
    return read_user_file(_user_path(spec, allowed_dirs), max_text_bytes)


def load_dataset(
    spec: str,
    allowed_dirs: Sequence[str | Path] | None = None,
    max_text_bytes: int | None = None,
    heldout: str | None = None,
) -> DatasetTexts:
    """A dataset spec: a built-in name or a file path (checked against allowed_dirs if given),
    its decoded text capped by `max_text_bytes` (None: ENTRODROP_MAX_TEXT_BYTES, else no cap).

    With `heldout` (another spec), the whole dataset trains and that one is evaluated instead
    of every 5th document.
    """
    if heldout is not None:
        train = all_texts(spec, allowed_dirs, max_text_bytes)
        held = all_texts(heldout, allowed_dirs, max_text_bytes)
        split = (
            f"{_name(spec)}: all {len(train)} documents train; held out: {_name(heldout)} "
            f"({len(held)} documents)"
        )
        return DatasetTexts(_name(spec), train, held, split)
    if spec == PYTHON_REFERENCE:
        return python_reference()
    if spec == GENERAL_TEXT:
        return split_user_texts(general_texts(), GENERAL_TEXT)
    path = _user_path(spec, allowed_dirs)
    return split_user_texts(read_user_file(path, max_text_bytes), path.name)


def _name(spec: str) -> str:
    return spec if is_builtin(spec) else Path(spec).name


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
    "TEXT_BUDGET_ENV",
    "TEXT_BUDGET_PER_UPLOAD_BYTE",
    "DataError",
    "all_texts",
    "DataTooLarge",
    "DatasetTexts",
    "build_blocks",
    "check_name_lengths",
    "check_path_allowed",
    "fingerprint_blocks",
    "general_texts",
    "is_builtin",
    "load_dataset",
    "parse_text_file",
    "python_reference",
    "env_text_budget",
    "read_user_file",
    "split_user_texts",
    "tokenize_texts",
    "uploads_dir",
]
