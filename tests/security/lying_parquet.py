"""A parquet file whose footer lies: it declares ~1 KB of text but holds one zstd value of N bytes.

Built by writing an honest file with pyarrow and rewriting its footer (the Thrift compact
FileMetaData) with small column sizes; just enough of the Thrift compact protocol to do that.
Run as a script it writes the file, so a test can build it in another process and keep the
hundreds of MB the honest value takes out of its own memory:

    python lying_parquet.py OUT.parquet VALUE_BYTES
"""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path
from typing import Any

BOOL_TRUE, BOOL_FALSE, LIST, SET, MAP, STRUCT = 1, 2, 9, 10, 11, 12
Field = list[Any]  # [field id, thrift type, value]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        if kind in (BOOL_TRUE, BOOL_FALSE):
            return kind == BOOL_TRUE
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind in (7, 8):
            n = 8 if kind == 7 else self.varint()
            self.pos += n
            return self.data[self.pos - n : self.pos]  # a double stays its 8 raw bytes
        if kind in (LIST, SET):
            head = self.byte()
            size, elem = head >> 4, head & 0x0F
            size = self.varint() if size == 15 else size
            return elem, [self.value(elem) for _ in range(size)]
        if kind == MAP:
            size = self.varint()
            kinds = self.byte() if size else 0
            pairs = [(self.value(kinds >> 4), self.value(kinds & 0x0F)) for _ in range(size)]
            return kinds >> 4, kinds & 0x0F, pairs
        if kind == STRUCT:
            return self.struct()
        raise ValueError(f"thrift type {kind}")

    def struct(self) -> list[Field]:
        fields: list[Field] = []
        last = 0
        while (head := self.byte()) != 0:
            delta, kind = head >> 4, head & 0x0F
            last = last + delta if delta else self.zigzag()
            fields.append([last, kind, self.value(kind)])
        return fields


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _value(kind: int, value: Any) -> bytes:
    if kind in (BOOL_TRUE, BOOL_FALSE):
        return b""
    if kind == 3:
        return bytes([value])
    if kind in (4, 5, 6):
        return _varint((value << 1) ^ (value >> 63))
    if kind == 7:
        return bytes(value)
    if kind == 8:
        return _varint(len(value)) + value
    if kind in (LIST, SET):
        elem, items = value
        size = bytes([len(items) << 4 | elem]) if len(items) < 15 else bytes([0xF0 | elem])
        size += _varint(len(items)) if len(items) >= 15 else b""
        return size + b"".join(_value(elem, v) for v in items)
    if kind == MAP:
        kt, vt, pairs = value
        head = _varint(len(pairs)) + (bytes([kt << 4 | vt]) if pairs else b"")
        return head + b"".join(_value(kt, k) + _value(vt, v) for k, v in pairs)
    return _struct(value)


def _struct(fields: list[Field]) -> bytes:
    out, last = bytearray(), 0
    for fid, kind, value in fields:
        if kind in (BOOL_TRUE, BOOL_FALSE):
            kind = BOOL_TRUE if value else BOOL_FALSE
        delta = fid - last
        out += bytes([delta << 4 | kind]) if 0 < delta <= 15 else bytes([kind]) + _value(4, fid)
        out += _value(kind, value)
        last = fid
    return bytes(out + b"\x00")


def _field(fields: list[Field], fid: int) -> Field:
    return next(f for f in fields if f[0] == fid)


def lying_parquet(value_bytes: int, declared: int = 1000) -> bytes:
    """One row, one `text` value of `value_bytes` (zstd); the footer says `declared` bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    table = pa.table({"text": pa.array(["x" * value_bytes])})
    pq.write_table(
        table, buf, compression="zstd", write_statistics=False, store_schema=False
    )  # no statistics: they would carry the value itself
    raw = buf.getvalue()
    size = struct.unpack("<I", raw[-8:-4])[0]
    meta = _Reader(raw[-8 - size : -8]).struct()  # FileMetaData
    for group in _field(meta, 4)[2][1]:  # row_groups
        _field(group, 2)[2] = declared  # RowGroup.total_byte_size
        for chunk in _field(group, 1)[2][1]:  # ColumnChunk
            _field(_field(chunk, 3)[2], 6)[2] = declared  # ColumnMetaData.total_uncompressed_size
    footer = _struct(meta)
    return raw[: -8 - size] + footer + struct.pack("<I", len(footer)) + b"PAR1"


if __name__ == "__main__":
    Path(sys.argv[1]).write_bytes(lying_parquet(int(sys.argv[2])))
