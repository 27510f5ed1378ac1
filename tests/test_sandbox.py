"""Parsing in a limited child process (entrodrop.sandbox): memory and time run out in the child,
and come back as the data errors a server answers 413 / 422; a file's own errors come back as
they are."""

from __future__ import annotations

import time

import pytest

from entrodrop.data import DataError, DataTooLarge
from entrodrop.sandbox import Limits, Summary, check_upload, limits_for, run_isolated

SMALL = Limits(memory_bytes=256 << 20)


def test_a_child_that_runs_out_of_memory_is_data_too_large() -> None:
    with pytest.raises(DataTooLarge, match="big.bin needs more than 268 MB"):
        run_isolated(bytearray, 2 << 30, name="big.bin", limits=SMALL)  # 2 GB in the child


def test_a_child_that_runs_out_of_time_is_a_data_error() -> None:
    with pytest.raises(DataError, match="slow.txt: reading it took longer than 1 s"):
        run_isolated(time.sleep, 600, name="slow.txt", limits=SMALL._replace(timeout_s=1.0))


def test_uploads_come_back_as_a_summary_or_their_own_error() -> None:
    assert check_upload(b"one\n\n\n\ntwo\n", "a.txt", 1000) == Summary("text", 2, 8)
    with pytest.raises(DataError, match="looks like a binary file"):
        check_upload(b"\x00\x01\x02", "b.txt", 1000)
    with pytest.raises(DataTooLarge, match="more than 5 bytes of text"):
        check_upload(b"longer than five\n", "c.txt", 5)


def test_memory_follows_the_text_budget() -> None:
    assert limits_for(None).memory_bytes == limits_for(1).memory_bytes == 256 << 20
    assert limits_for(100 << 20).memory_bytes == 1600 << 20
