"""Precision by what the hardware does natively: bf16 where it is native and faster, fp32 elsewhere.

bf16 autocast is ~2.5x faster than fp32 on a CPU with AVX512-BF16 but ~4x slower on one with AVX2
only, where oneDNN emulates it (docs/benchmarks.md). So the choice is made at run time, per device:

- CUDA: bf16 where ``torch.cuda.is_bf16_supported()``, fp32 otherwise;
- CPU: bf16 autocast only where torch reports native bf16 (AVX512-BF16 or AMX, or oneDNN bf16)
  *and* a short matmul probe confirms it beats fp32; the probe runs once per machine and is
  remembered in ``<home>/machine.json``; fp32 otherwise.

Every fact comes from torch (not /proc/cpuinfo), so ``ATEN_CPU_CAPABILITY`` and
``ONEDNN_MAX_CPU_ISA`` overrides are honoured. An explicit dtype always wins.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from entrodrop.paths import home_dir

log = logging.getLogger(__name__)

MACHINE_FILE = "machine.json"
PROBE_SHAPE = (256, 576, 1536)  # rows x in x out: one MLP projection of the default model
PROBE_REPEATS = 5
PROBE_MIN_SPEEDUP = 1.2  # bf16 must beat fp32 clearly, or the rounding is not worth it
CHOICES = ("auto", "float32", "bfloat16", "float16")
_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class PrecisionError(ValueError):
    """An unknown dtype name, with a message meant for a person."""


@dataclass(frozen=True)
class Precision:
    """How to run a model: weight dtype, autocast dtype (or none), and why in one sentence."""

    name: str  # "float32", "bfloat16" or "float16": what the matmuls run in
    weight_dtype: torch.dtype
    autocast_dtype: torch.dtype | None
    reason: str

    @property
    def bf16(self) -> bool:
        """True where training should use the Trainer's bf16 mixed precision."""
        return self.name == "bfloat16"

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The mixed-precision context for forward passes on device (nothing for float32)."""
        return autocast_context(device, self.autocast_dtype)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


def autocast_context(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    """Autocast to dtype on device, or no context at all for full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def dtype_name(dtype: str | torch.dtype | None) -> str:
    """Canonical name of a dtype argument ("auto" for None); raises PrecisionError if unknown."""
    if dtype is None:
        return "auto"
    if isinstance(dtype, torch.dtype):
        name = str(dtype).replace("torch.", "")
    else:
        name = _ALIASES.get(dtype.strip().lower(), dtype.strip().lower())
    if name not in CHOICES:
        raise PrecisionError(f"unknown dtype {dtype!r}; use one of {', '.join(CHOICES)}")
    return name


# ---------------------------------------------------------------- what the CPU does natively


@dataclass(frozen=True)
class CpuFacts:
    """What torch says about this CPU, honouring ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA."""

    model: str
    capability: str  # torch.backends.cpu.get_cpu_capability(): AVX2, AVX512, ...
    avx512_bf16: bool
    amx: bool
    mkldnn_bf16: bool

    @property
    def bf16_candidate(self) -> bool:
        """Hardware bf16 that torch will use: worth a timing probe."""
        hardware = self.avx512_bf16 or self.amx or self.capability.startswith("SVE")
        return self.mkldnn_bf16 and (hardware or self.capability == "AVX512")

    def key(self) -> str:
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
        return f"{self.model} | {self.capability} | isa={isa} | torch {torch.__version__}"


def _flag(name: str) -> bool:
    check = getattr(torch.cpu, name, None)
    try:
        return bool(check()) if callable(check) else False
    except RuntimeError:
        return False


def cpu_model() -> str:
    """The CPU's marketing name (a key for remembered facts only; capabilities come from torch)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_facts() -> CpuFacts:
    """Query torch for this CPU's vector capability and bf16 support."""
    try:
        mkldnn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        mkldnn = False
    capability = torch.backends.cpu.get_cpu_capability()
    limited = capability in ("DEFAULT", "NO AVX", "AVX2")  # ATEN_CPU_CAPABILITY can lower it
    return CpuFacts(
        model=cpu_model(),
        capability=capability,
        avx512_bf16=not limited and _flag("_is_avx512_bf16_supported"),
        amx=not limited and _flag("_is_amx_tile_supported"),
        mkldnn_bf16=mkldnn,
    )


def probe_bf16_speedup() -> float:
    """fp32 time / bf16-autocast time of one model-sized matmul (medians of a few repeats)."""
    rows, k, n = PROBE_SHAPE
    x, w = torch.randn(rows, k), torch.randn(k, n)

    def seconds(dtype: torch.dtype | None) -> float:
        times = []
        with torch.inference_mode(), autocast_context(torch.device("cpu"), dtype):
            x @ w  # warm-up: oneDNN builds its kernel on first use
            for _ in range(PROBE_REPEATS):
                t0 = time.perf_counter()
                x @ w
                times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    fp32, bf16 = [], []
    for _ in range(2):  # interleaved, so a busy neighbour slows both alike
        fp32.append(seconds(None))
        bf16.append(seconds(torch.bfloat16))
    return min(fp32) / max(min(bf16), 1e-9)


def _read_machine_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_machine_file(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".machine-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)  # several processes may probe at once: readers see whole files
    except OSError as exc:  # a read-only home only means the probe runs again next time
        log.warning("cannot remember the bf16 probe in %s: %s", path, exc)


# What this process decided, per CPU: every model it loads runs in the same precision, even if
# another home's machine.json (or none) is seen later. The probe is noisy near its threshold, and
# two checkpoints of one comparison scored in different precisions differ by ~1e-3 nats.
_DECIDED: dict[str, float] = {}


def remembered_speedup(facts: CpuFacts) -> float:
    """The bf16 probe's speed-up on this machine, measured once and kept in <home>/machine.json."""
    if facts.key() not in _DECIDED:
        _DECIDED[facts.key()] = _home_speedup(facts)
    return _DECIDED[facts.key()]


def _home_speedup(facts: CpuFacts) -> float:
    path = home_dir() / MACHINE_FILE
    data = _read_machine_file(path)
    entry = data.get(facts.key())
    if isinstance(entry, dict) and isinstance(entry.get("bf16_speedup"), int | float):
        return float(entry["bf16_speedup"])
    speedup = probe_bf16_speedup()
    log.info("bf16 probe on this CPU: %.2fx fp32 (remembered in %s)", speedup, path)
    data[facts.key()] = {**asdict(facts), "bf16_speedup": speedup, "when": time.time()}
    _write_machine_file(path, data)
    return speedup


# ---------------------------------------------------------------- the choice


def _cpu_auto() -> Precision:
    facts = cpu_facts()
    fp32 = torch.float32
    if not facts.bf16_candidate:
        why = f"this CPU ({facts.capability}) has no native bf16; bf16 would be emulated and slower"
        return Precision("float32", fp32, None, f"float32: {why}")
    speedup = remembered_speedup(facts)
    if speedup >= PROBE_MIN_SPEEDUP:
        why = f"this CPU ({facts.capability}) has native bf16, {speedup:.1f}x fp32 in a probe"
        return Precision("bfloat16", fp32, torch.bfloat16, f"bfloat16 autocast: {why}")
    why = f"bf16 on this CPU ({facts.capability}) was only {speedup:.1f}x fp32 in a probe"
    return Precision("float32", fp32, None, f"float32: {why}")


def _cuda_auto(device: torch.device) -> Precision:
    gpu = torch.cuda.get_device_name(device)
    if torch.cuda.is_bf16_supported():
        return Precision("bfloat16", torch.bfloat16, None, f"bfloat16: {gpu} supports it natively")
    return Precision("float32", torch.float32, None, f"float32: {gpu} has no bf16 support")


def _explicit(device: torch.device, name: str) -> Precision:
    dtype = _TORCH_DTYPES[name]
    reason = f"{name}: asked for explicitly"
    if name == "float32":
        return Precision(name, torch.float32, None, reason)
    if device.type == "cuda":
        return Precision(name, dtype, None, reason)
    # On a CPU the weights stay fp32 and only the matmuls run in the lower precision: bf16
    # weights were measured less accurate for entropies (docs/benchmarks.md).
    return Precision(name, torch.float32, dtype, reason.replace(":", " autocast:", 1))


def choose_precision(device: torch.device, dtype: str | torch.dtype | None = None) -> Precision:
    """The precision to run a model in on device: dtype if given, else what is native there."""
    name = dtype_name(dtype)
    if name != "auto":
        return _explicit(device, name)
    if device.type == "cuda":
        return _cuda_auto(device)
    if device.type == "cpu":
        return _cpu_auto()
    return Precision("float32", torch.float32, None, f"float32: the default on {device.type}")
