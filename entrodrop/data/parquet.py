"""The parquet reader: the columns a format uses, a batch of rows at a time, sized before decoding.

String values are read dictionary-encoded (nested ones too), so a bomb (one huge value repeated
by reference) costs its dictionary and indices, and its decoded size is known, from lengths
alone, before any Python string is built.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from entrodrop.data.errors import Budget, DataError
from entrodrop.data.readers import Record

PARQUET_BATCH_ROWS = 256  # rows decoded at once: memory follows the batch, not the file


def _open(stream: BinaryIO, dictionary: list[str] | None = None) -> Any:
    import pyarrow.parquet as pq

    stream.seek(0)
    return pq.ParquetFile(stream, read_dictionary=dictionary)


def parquet_columns(stream: BinaryIO, name: str) -> list[str]:
    """The top-level column names of a parquet file (its footer only)."""
    try:
        return list(_open(stream).schema_arrow.names)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{name} is not a readable parquet file") from exc


def _in_columns(path: str, columns: Sequence[str]) -> bool:
    return any(path == c or path.startswith(c + ".") for c in columns)


def _string_leaves(parquet: Any, columns: Sequence[str]) -> list[str]:
    """Paths of the byte-array leaves under `columns` ('messages.list.element.content')."""
    schema = parquet.schema
    leaves = (schema.column(i) for i in range(len(schema)))
    return [
        c.path for c in leaves if c.physical_type == "BYTE_ARRAY" and _in_columns(c.path, columns)
    ]


def declared_text_bytes(metadata: Any, columns: Sequence[str] = ("text",)) -> int:
    """What the footer says the columns take once decompressed (pages, not values)."""
    total = 0
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        for j in range(group.num_columns):
            chunk = group.column(j)
            if _in_columns(chunk.path_in_schema, columns):
                total += max(0, chunk.total_uncompressed_size)
    return total


def decoded_bytes(array: Any) -> int:
    """UTF-8 bytes of every string in an arrow array, nested or dictionary-encoded, from lengths
    only (never the strings themselves)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_dictionary(kind):
        if not (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)):
            return 0
        lengths = pc.binary_length(array.dictionary)
        return int(pc.sum(pc.take(lengths, array.indices)).as_py() or 0)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return int(pc.sum(pc.binary_length(array)).as_py() or 0)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return decoded_bytes(array.flatten())
    if pa.types.is_struct(kind):
        return sum(decoded_bytes(child) for child in array.flatten())
    return 0


def _check_strings(schema: Any, columns: Sequence[str], name: str) -> None:
    """Flat columns (text, instruction, ...) must hold strings; nested ones are checked per row."""
    import pyarrow as pa

    for column in columns:
        kind = schema.field(column).type
        kind = kind.value_type if pa.types.is_dictionary(kind) else kind
        nested = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_struct(kind)
        if not (nested or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise DataError(f"{name}: the '{column}' column must hold strings")


def read_parquet(
    stream: BinaryIO, name: str, limit: int | None, columns: Sequence[str], nested: bool
) -> Iterator[Record]:
    """Rows of the given columns as {column: value} (nulls left out), refused past `limit` bytes
    of decoded text from the footer's sizes, then batch by batch before each batch is decoded.

    `nested`: the columns may hold lists of structs (conversations); else they must be strings.
    """
    guard = Budget(name, limit)  # the caller counts again what it keeps: same strings, same sum
    try:
        parquet = _open(stream, _string_leaves(_open(stream), columns))
        if not nested:
            _check_strings(parquet.schema_arrow, columns, name)
        guard.check(declared_text_bytes(parquet.metadata, columns))  # nothing decompressed yet
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(columns))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{name} is not a readable parquet file ({exc})") from exc
    row = 0
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            for i in range(batch.num_columns):
                guard.add(decoded_bytes(batch.column(i)))
            rows = batch.to_pylist()
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"{name} is not a readable parquet file ({exc})") from exc
        for values in rows:
            row += 1
            yield Record(f"row {row}", {k: v for k, v in values.items() if v is not None})
