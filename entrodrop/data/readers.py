"""Readers per file type: bytes in, records out (one per line, item or row), each with its place.

Pure functions of a binary stream, bounded as they read: a JSONL line or JSON array item longer
than the text budget is refused before it is decoded whole, and a CSV is read a line at a time.
What a record means (text or a conversation) is decided by entrodrop.data.formats.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from entrodrop.data.errors import Budget, DataError, too_large

# Bytes of JSON around a record's strings: a line or item may exceed the text budget by this much.
RECORD_SLACK = 64_000
JSON_CHUNK = 1 << 20  # bytes read at a time from a JSON array
_WS = " \t\r\n"


@dataclass(frozen=True)
class Record:
    """One record of a file and where it is, for messages: 'line 3', 'item 2 (line 5)', 'row 4'."""

    where: str
    value: Any  # a dict (JSON, CSV, parquet) or a str (a .txt document)


def decode(raw: bytes, name: str, where: str = "") -> str:
    """UTF-8 text, or a DataError naming the file and where the bad byte is."""
    if b"\x00" in raw[:8192]:
        raise DataError(f"{name} looks like a binary file, not text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not UTF-8 text ({where}byte {exc.start})") from exc


def read_text(raw: bytes, name: str) -> str:
    """The text of a plain-text file's bytes, whole; a DataError names what is wrong (empty,
    binary, not UTF-8 and where) in the words a dataset upload gets."""
    text = decode(raw, name) if raw.strip() else ""
    if not text.strip():
        raise DataError(f"{name} is empty")
    return text


def split_documents(text: str) -> list[str]:
    """Documents separated by two or more blank lines; a file without them is one document."""
    # Windows line ends count too (a CRLF file would otherwise be one document).
    text = text.replace("\r\n", "\n")
    parts = [p for p in text.split("\n\n\n") if p.strip()]
    return parts or [text]


def read_txt(stream: BinaryIO, size: int, name: str, budget: Budget) -> Iterator[Record]:
    """A .txt file's documents (UTF-8 text decodes to as many bytes: refused by size first)."""
    budget.check(size)
    text = decode(stream.read(), name)
    if not text.strip():
        raise DataError(f"{name} is empty")
    for i, doc in enumerate(split_documents(text), start=1):
        yield Record(f"document {i}", doc)


def _json_value(text: str, name: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name} {where}: not valid JSON ({exc.msg})") from exc
    except RecursionError as exc:
        raise DataError(f"{name} {where}: JSON nested too deeply") from exc


def _line_limit(budget: Budget) -> int:
    return -1 if budget.limit is None else budget.limit + RECORD_SLACK


def read_jsonl(stream: BinaryIO, name: str, budget: Budget) -> Iterator[Record]:
    """One JSON object per line, read a line at a time: no line longer than the budget is read."""
    limit = _line_limit(budget)
    for lineno, raw_line in enumerate(iter(lambda: stream.readline(limit), b""), start=1):
        if limit > 0 and len(raw_line) >= limit and not raw_line.endswith(b"\n"):
            raise too_large(name, budget.limit or 0)
        line = decode(raw_line, name, f"line {lineno}, ")
        if lineno == 1:
            line = line.removeprefix("\ufeff")  # a byte-order mark some editors write
        if not line.strip():
            continue
        if lineno == 1 and line.lstrip().startswith("["):
            raise DataError(
                f"{name} line 1 starts a JSON array: a .jsonl file holds one JSON object per "
                "line; name the file .json, or write one object per line"
            )
        yield Record(f"line {lineno}", _json_value(line, name, f"line {lineno}"))


class _ArrayReader:
    """Items of one JSON array read from a stream a chunk at a time (json.raw_decode per item)."""

    def __init__(self, stream: BinaryIO, name: str, budget: Budget) -> None:
        self.stream, self.name, self.budget = stream, name, budget
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.buffer, self.pos, self.line, self.offset, self.eof = "", 0, 1, 0, False

    def fill(self) -> bool:
        """Read a chunk more; False at the end of the stream."""
        if self.eof:
            return False
        chunk = self.stream.read(JSON_CHUNK)
        self.eof = not chunk
        try:
            text = self.decoder.decode(chunk, final=self.eof)
        except UnicodeDecodeError as exc:
            where = self.line + self.buffer.count("\n", self.pos) + chunk[: exc.start].count(b"\n")
            raise DataError(
                f"{self.name} is not UTF-8 text (line {where}, byte {self.offset + exc.start})"
            ) from exc
        self.offset += len(chunk)
        if "\x00" in text:
            raise DataError(f"{self.name} looks like a binary file, not text")
        self.buffer = self.buffer[self.pos :] + text
        self.pos = 0
        limit = _line_limit(self.budget)
        if limit > 0 and len(self.buffer) > limit:
            raise too_large(self.name, self.budget.limit or 0)
        return bool(text) or not self.eof

    def skip_space(self) -> str:
        """The next character that is not white space ('' at the end), without consuming it."""
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in _WS:
                if self.buffer[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.fill():
                return ""

    def item(self, index: int) -> Any:
        """Decode the value at the cursor, reading more of the stream until it is complete."""
        where = f"item {index} (line {self.line})"
        while True:
            try:
                value, end = json.JSONDecoder().raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                if not self.eof and self.fill():
                    continue  # the item goes on past what has been read
                raise DataError(f"{self.name} {where}: not valid JSON ({exc.msg})") from exc
            except RecursionError as exc:
                raise DataError(f"{self.name} {where}: JSON nested too deeply") from exc
            if end == len(self.buffer) and not self.eof and self.fill():
                continue  # a number or literal may go on in the next chunk
            self.line += self.buffer.count("\n", self.pos, end)
            self.pos = end
            return value


def read_json_array(stream: BinaryIO, name: str, budget: Budget) -> Iterator[Record]:
    """The items of a .json file holding one array of objects, streamed item by item."""
    reader = _ArrayReader(stream, name, budget)
    reader.fill()
    if reader.buffer.startswith("\ufeff"):
        reader.pos = 1
    first = reader.skip_space()
    if first == "{":
        raise DataError(
            f"{name} holds a JSON object, not an array of them: write [{{...}}, {{...}}], or one "
            "object per line in a .jsonl file"
        )
    if first != "[":
        raise DataError(f"{name} line {reader.line}: expected a JSON array of objects ([...])")
    reader.pos += 1
    index = 0
    while True:
        nxt = reader.skip_space()
        if nxt == "]" and index == 0:
            break
        index += 1
        line = reader.line
        yield Record(f"item {index} (line {line})", reader.item(index))
        nxt = reader.skip_space()
        if nxt == ",":
            reader.pos += 1
            continue
        if nxt == "]":
            break
        raise DataError(f"{name} line {reader.line}: expected ',' or ']' after item {index}")
    reader.pos += 1
    if reader.skip_space():
        raise DataError(f"{name} line {reader.line}: text after the end of the JSON array")


def _csv_lines(stream: BinaryIO, name: str, budget: Budget) -> Iterator[str]:
    limit = _line_limit(budget)
    for lineno, raw_line in enumerate(iter(lambda: stream.readline(limit), b""), start=1):
        if limit > 0 and len(raw_line) >= limit and not raw_line.endswith(b"\n"):
            raise too_large(name, budget.limit or 0)
        line = decode(raw_line, name, f"line {lineno}, ")
        yield line.removeprefix("\ufeff") if lineno == 1 else line


def read_csv(stream: BinaryIO, name: str, budget: Budget) -> tuple[list[str], Iterator[Record]]:
    """A CSV file's header (column names) and its rows as {column: value}, empty cells left out."""
    reader = csv.reader(_csv_lines(stream, name, budget))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DataError(f"{name} line 1: not valid CSV ({exc})") from exc
    if header is None or not any(h.strip() for h in header):
        raise DataError(f"{name} is empty: a CSV file needs a header line naming its columns")
    columns = [h.strip() for h in header]
    return columns, _csv_rows(reader, columns, name)


def _csv_rows(reader: Any, columns: list[str], name: str) -> Iterator[Record]:
    start = reader.line_num + 1
    try:
        for row in reader:
            where = f"line {start}"
            start = reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(columns):
                raise DataError(
                    f"{name} {where}: {len(row)} cells, but the header has {len(columns)}"
                )
            yield Record(where, {c: v for c, v in zip(columns, row, strict=False) if v != ""})
    except csv.Error as exc:
        raise DataError(f"{name} line {reader.line_num}: not valid CSV ({exc})") from exc
