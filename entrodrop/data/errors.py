"""Data errors with messages for a person, and the decoded-text budget every reader counts against."""

from __future__ import annotations

import os

# Decoded text allowed per dataset, as a multiple of the server's upload cap: a parquet file of
# a few KB can declare gigabytes of text (dictionary pages, zstd), so bytes alone bound nothing.
TEXT_BUDGET_PER_UPLOAD_BYTE = 4
# The server tells its training processes the budget through this variable (its own setting
# ENTRODROP_MAX_TEXT_BYTES); unset, as for `entrodrop train` on a user's own files, means no cap.
TEXT_BUDGET_ENV = "ENTRODROP_MAX_TEXT_BYTES"


class DataError(ValueError):
    """A dataset that cannot be used, with a message meant for a person."""


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


def too_large(name: str, budget: int) -> DataTooLarge:
    return DataTooLarge(
        f"{name} holds more than {budget} bytes of text, the limit for a dataset here "
        f"({TEXT_BUDGET_ENV})"
    )


def utf8_size(text: str) -> int:
    """Bytes of a string in UTF-8 (lone surrogates from JSON escapes count as 3 bytes each)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class Budget:
    """The decoded-text bytes of one dataset file, counted as they are decoded, against a cap.

    ``limit`` None means no cap. Each reader adds the bytes of the strings it keeps, so the
    budget bounds what a file costs in memory, whatever its format or compression.
    """

    def __init__(self, name: str, limit: int | None) -> None:
        self.name, self.limit, self.used = name, limit, 0

    def add(self, n_bytes: int) -> None:
        self.used += n_bytes
        if self.limit is not None and self.used > self.limit:
            raise too_large(self.name, self.limit)

    def check(self, n_bytes: int) -> None:
        """Refuse n_bytes more without counting them (a size known before decoding)."""
        if self.limit is not None and self.used + n_bytes > self.limit:
            raise too_large(self.name, self.limit)

    @classmethod
    def resolve(cls, name: str, limit: int | None) -> Budget:
        """The given cap, else ENTRODROP_MAX_TEXT_BYTES, else none."""
        return cls(name, env_text_budget() if limit is None else limit)
