"""Users' data files: any supported file type and format to examples, with errors naming the place.

`parse_data_file` (bytes) and `read_data_file` (a path) are pure: no model, no tokenizer, nothing
written, the decoded text bounded by the budget. They are what the server's upload check, the
run validation and the training process all call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from entrodrop.data.errors import Budget, DataError
from entrodrop.data.formats import (
    FORMAT_HELP,
    KEYS,
    Conversation,
    DataFormat,
    DataFormatChoice,
    Example,
    detect,
    example_bytes,
    identify,
    is_instruction,
    to_example,
)
from entrodrop.data.parquet import parquet_columns, read_parquet
from entrodrop.data.readers import Record, read_csv, read_json_array, read_jsonl, read_txt
from entrodrop.paths import PathError, expand_user

USER_SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".parquet")
TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass
class UserData:
    """A data file's examples: texts (format 'text') or conversations (instruction formats)."""

    name: str
    format: DataFormat
    examples: list[Example] = field(default_factory=list)

    @property
    def is_instruction(self) -> bool:
        return is_instruction(self.format)

    def texts(self) -> list[str]:
        """The examples as texts; a DataError for instruction data."""
        if self.is_instruction:
            raise DataError(
                f"{self.name} holds instruction data ({self.format}), not plain text: it is "
                "rendered with a model's chat template (entrodrop data, train or the dashboard)"
            )
        return [e for e in self.examples if isinstance(e, str)]

    def conversations(self) -> list[Conversation]:
        return [e for e in self.examples if not isinstance(e, str)]

    @property
    def n_chars(self) -> int:
        return sum(
            len(e) if isinstance(e, str) else sum(len(m["content"]) for m in e)
            for e in self.examples
        )


def _records(
    stream: BinaryIO, size: int, name: str, budget: Budget, forced: DataFormatChoice
) -> tuple[Iterator[Record], DataFormat | None]:
    """The file's records, and its format where the file type decides it once for all records
    (.txt: plain text; .csv and .parquet: the columns, of which only the format's are read)."""
    suffix = Path(name).suffix.lower()
    if suffix == ".txt":
        if forced not in ("auto", "text"):
            raise DataError(
                f"{name}: a .txt file is plain text; data_format {forced!r} needs a "
                f"{', '.join(s for s in USER_SUFFIXES if s != '.txt')} file"
            )
        return read_txt(stream, size, name, budget), "text"
    if suffix == ".jsonl":
        return read_jsonl(stream, name, budget), None
    if suffix == ".json":
        return read_json_array(stream, name, budget), None
    if suffix == ".csv":
        columns, rows = read_csv(stream, name, budget)
        fmt = table_format(columns, forced, name)
        keep = set(KEYS[fmt].columns)
        return (Record(r.where, {k: v for k, v in r.value.items() if k in keep}) for r in rows), fmt
    columns = parquet_columns(stream, name)
    fmt = table_format(columns, forced, name)
    used = [c for c in KEYS[fmt].columns if c in columns]
    return read_parquet(stream, name, budget.limit, used, nested=is_instruction(fmt)), fmt


def table_format(columns: list[str], forced: DataFormatChoice, name: str) -> DataFormat:
    """A table's format from its column names (its other columns are not read)."""
    fmt = forced
    if fmt == "auto":
        signatures = [c for c in columns if c in {k.signature for k in KEYS.values()}]
        if not signatures:
            raise DataError(
                f"{name} has no usable column (columns: {', '.join(columns) or 'none'}); "
                "expected " + "; ".join(FORMAT_HELP.values())
            )
        fmt = identify(signatures, name)
    return detect([c for c in columns if c in KEYS[fmt].columns], fmt, name)


def _example(
    record: Record, name: str, fmt: DataFormat | None, check: DataFormatChoice, first: str
) -> tuple[Example, DataFormat, str]:
    """A record as an example: (example, the file's format, where that format was first seen).

    `check`: 'auto' detects each record's format (a second format is an error), a format checks
    the record against it."""
    where = f"{name} {record.where}"
    if isinstance(record.value, str):  # a .txt document
        return record.value, "text", first
    if not isinstance(record.value, dict):
        raise DataError(f"{where}: expected a JSON object, not {type(record.value).__name__}")
    seen = detect(list(record.value), check, where)
    if fmt is None:
        fmt, first = seen, record.where
    elif seen != fmt:
        raise DataError(
            f"{where}: mixed formats: this record is {seen}, but {first} is {fmt}; one format per "
            "file"
        )
    return to_example(record.value, fmt, where), fmt, first


def _parse(
    stream: BinaryIO, size: int, name: str, limit: int | None, forced: DataFormatChoice
) -> UserData:
    suffix = Path(name).suffix.lower()
    if suffix not in USER_SUFFIXES:
        raise DataError(f"{name}: unsupported file type; use one of {', '.join(USER_SUFFIXES)}")
    budget = Budget.resolve(name, limit)
    records, fmt = _records(stream, size, name, budget, forced)
    # The file type may fix the format (tables, .txt); each JSON record is detected, and a
    # record of another format than the first is an error (auto) or checked as forced.
    check: DataFormatChoice = forced if fmt is None else fmt
    first = ""
    examples: list[Example] = []
    for record in records:
        example, fmt, first = _example(record, name, fmt, check, first)
        budget.add(example_bytes(example))
        if not isinstance(example, str) or example.strip():
            examples.append(example)
    if not examples:
        raise DataError(
            f"{name} has no text" if fmt in (None, "text") else f"{name} has no examples"
        )
    return UserData(name, fmt or "text", examples)


def parse_data_file(
    raw: bytes, name: str, max_text_bytes: int | None = None, data_format: DataFormatChoice = "auto"
) -> UserData:
    """The examples in the bytes of a data file named `name` (its suffix says the file type).

    `max_text_bytes` caps the decoded text (None: ENTRODROP_MAX_TEXT_BYTES, else no cap); over it,
    DataTooLarge is raised before the text is materialised. Any other problem is a DataError
    naming the file and the line, item or row.
    """
    import io

    if not raw.strip():
        raise DataError(f"{name} is empty")
    return _parse(io.BytesIO(raw), len(raw), name, max_text_bytes, data_format)


def read_data_file(
    path: str | Path, max_text_bytes: int | None = None, data_format: DataFormatChoice = "auto"
) -> UserData:
    """The examples of a data file on disk, streamed (see parse_data_file)."""
    try:
        p = expand_user(path)
    except PathError as exc:
        raise DataError(str(exc)) from exc
    if not p.is_file():
        raise DataError(f"no such file: {path}")
    try:
        with p.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size == 0:
                raise DataError(f"{p.name} is empty")
            return _parse(stream, size, p.name, max_text_bytes, data_format)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc


def parse_text_file(raw: bytes, name: str, max_text_bytes: int | None = None) -> list[str]:
    """Texts from the bytes of a plain-text data file (a DataError for instruction data)."""
    return parse_data_file(raw, name, max_text_bytes).texts()


def read_user_file(path: str | Path, max_text_bytes: int | None = None) -> list[str]:
    """Texts of a user's plain-text data file (a DataError for instruction data)."""
    return read_data_file(path, max_text_bytes).texts()


def describe_upload(data: UserData) -> dict[str, Any]:
    """What an upload holds, in a few numbers for the form."""
    return {
        "format": data.format,
        "n_examples": len(data.examples),
        "n_texts": len(data.examples),
        "n_chars": data.n_chars,
    }
