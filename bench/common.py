"""Shared helpers for the benchmarks: timing medians, machine facts, tables and JSON results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine_class() -> str:
    """The class a result belongs to: the GPU's name, else the CPU's capability and native bf16.

    e.g. "avx2", "avx512-bf16", "avx512-amx", "cuda-nvidia-h100-80gb-hbm3": figures are only
    comparable within a class (bf16 is ~2.5x faster than fp32 on one CPU class, ~4x slower on another).
    """
    import torch

    from entrodrop.precision import cpu_facts

    if torch.cuda.is_available():
        return "cuda-" + "-".join(torch.cuda.get_device_name(0).lower().split())
    facts = cpu_facts()
    name = facts.capability.lower().replace(" ", "-")
    if facts.amx:
        return f"{name}-amx"
    return f"{name}-bf16" if facts.avx512_bf16 else name


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU and what torch says about it, cores, threads, GPU if any."""
    import torch

    from entrodrop.precision import choose_precision, cpu_facts

    facts = cpu_facts()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return {
        "class": machine_class(),
        "cpu": facts.model,
        "cpu_capability": facts.capability,
        "native_bf16": facts.avx512_bf16 or facts.amx,
        "mkldnn_bf16": facts.mkldnn_bf16,
        "precision": choose_precision(device).reason,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Run each function `repeats` times, alternating between them so noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def percentile(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    if not ordered:
        return float("nan")
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return "" if v is None else str(v)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write bench/results/<name>-<machine class>.json with the machine's facts."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{machine_class()}.json"
    payload = {
        "benchmark": name,
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return path
