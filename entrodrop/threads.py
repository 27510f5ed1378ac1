"""How many torch threads a CPU forward pass should use now: the cores other processes leave idle.

torch's default (one thread per core) is fastest on an idle machine, but on a busy one its OpenMP
threads spin at every barrier waiting for a thread that another process has descheduled: scoring
on this project's shared 2-core machine was 8x faster with 1 thread than with 2 while other work
ran (docs/benchmarks.md). So each scoring call samples how busy the cores are for a moment and
uses at most that many threads, then restores the setting.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

SAMPLE_S = 0.05  # how long to watch the cores before a pass: short next to any real pass
REUSE_S = 2.0  # a count decided this recently is reused: many short passes pay for one sample
_last: tuple[float, int, int] = (-1e9, 0, 0)  # (when, default it was decided for, threads)


def idle_cores(sample_s: float = SAMPLE_S) -> float:
    """Cores left idle by every process over the next `sample_s` seconds (0 to cpu count)."""
    import psutil

    busy = psutil.cpu_percent(interval=sample_s, percpu=True)
    return sum(100.0 - p for p in busy) / 100.0


def threads_for_now(default: int | None = None) -> int:
    """torch's thread count, lowered to the idle cores (at least 1)."""
    global _last
    most = default or torch.get_num_threads()
    when, decided_for, n = _last
    if decided_for == most and time.monotonic() - when < REUSE_S:
        return n
    try:
        idle = idle_cores()
    except (ImportError, OSError, RuntimeError):  # no way to tell: keep torch's choice
        return most
    n = max(1, min(most, round(idle)))
    _last = (time.monotonic(), most, n)
    return n


@contextlib.contextmanager
def cpu_threads(device: torch.device) -> Iterator[int]:
    """Within the block, torch uses threads_for_now() threads on a CPU; restored on exit."""
    before = torch.get_num_threads()
    if device.type != "cpu":
        yield before
        return
    n = threads_for_now(before)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
