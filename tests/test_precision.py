"""Precision by capability: the CPU/CUDA choice, the remembered probe, explicit overrides, threads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from entrodrop import precision, threads
from entrodrop.config import RunConfig
from entrodrop.precision import CpuFacts, PrecisionError, choose_precision

CPU = torch.device("cpu")
AVX2 = CpuFacts("Test CPU", "AVX2", avx512_bf16=False, amx=False, mkldnn_bf16=False)
BF16 = CpuFacts("Test CPU", "AVX512", avx512_bf16=True, amx=False, mkldnn_bf16=True)


class Probe:
    """A stand-in for the timing probe: counts its runs and reports a chosen speed-up."""

    def __init__(self) -> None:
        self.runs = 0
        self.speedup = 2.5

    def __call__(self) -> float:
        self.runs += 1
        return self.speedup


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Probe:
    fake = Probe()
    monkeypatch.setattr(precision, "probe_bf16_speedup", fake)
    monkeypatch.setattr(precision, "_DECIDED", {})  # a fresh process for each test
    return fake


def _machine(monkeypatch: pytest.MonkeyPatch, facts: CpuFacts) -> None:
    monkeypatch.setattr(precision, "cpu_facts", lambda: facts)


def test_avx2_cpu_runs_float32_without_probing(
    monkeypatch: pytest.MonkeyPatch, probe: Probe
) -> None:
    _machine(monkeypatch, AVX2)
    p = choose_precision(CPU)
    assert p.name == "float32" and p.autocast_dtype is None and p.weight_dtype == torch.float32
    assert "AVX2" in p.reason and "no native bf16" in p.reason
    assert not p.bf16 and probe.runs == 0


def test_native_bf16_cpu_uses_autocast_and_remembers_the_probe(
    monkeypatch: pytest.MonkeyPatch, probe: Probe, entrodrop_home: Path
) -> None:
    _machine(monkeypatch, BF16)
    p = choose_precision(CPU)
    assert p.name == "bfloat16" and p.bf16
    assert p.weight_dtype == torch.float32 and p.autocast_dtype == torch.bfloat16
    assert "native bf16" in p.reason and "2.5x" in p.reason
    saved = json.loads((entrodrop_home / precision.MACHINE_FILE).read_text())
    entry = saved[BF16.key()]
    assert entry["bf16_speedup"] == 2.5 and entry["capability"] == "AVX512"
    assert choose_precision(CPU).name == "bfloat16"
    assert probe.runs == 1  # the second choice read machine.json


def test_one_process_keeps_its_choice_across_homes(
    monkeypatch: pytest.MonkeyPatch, probe: Probe, tmp_path: Path
) -> None:
    """Two models loaded by one process (a checkpoint comparison) run in the same precision,
    even when the second load sees another home whose probe would have said otherwise."""
    _machine(monkeypatch, BF16)
    assert choose_precision(CPU).name == "bfloat16"
    other = tmp_path / "other-home"
    other.mkdir()
    (other / precision.MACHINE_FILE).write_text(json.dumps({BF16.key(): {"bf16_speedup": 0.4}}))
    monkeypatch.setenv("ENTRODROP_HOME", str(other))
    assert choose_precision(CPU).name == "bfloat16"
    assert probe.runs == 1


def test_a_slow_bf16_probe_keeps_float32(monkeypatch: pytest.MonkeyPatch, probe: Probe) -> None:
    _machine(monkeypatch, BF16)
    probe.speedup = 0.8
    p = choose_precision(CPU)
    assert p.name == "float32" and "0.8x" in p.reason


def test_a_damaged_machine_file_is_probed_again(
    monkeypatch: pytest.MonkeyPatch, probe: Probe, entrodrop_home: Path
) -> None:
    _machine(monkeypatch, BF16)
    (entrodrop_home / precision.MACHINE_FILE).write_text("{not json")
    assert choose_precision(CPU).name == "bfloat16"
    assert probe.runs == 1
    assert BF16.key() in json.loads((entrodrop_home / precision.MACHINE_FILE).read_text())


@pytest.mark.parametrize("facts", [AVX2, BF16])
def test_explicit_dtype_wins_everywhere(
    monkeypatch: pytest.MonkeyPatch, probe: Probe, facts: CpuFacts
) -> None:
    _machine(monkeypatch, facts)
    assert choose_precision(CPU, "float32").autocast_dtype is None
    for name in ("bfloat16", "bf16", torch.bfloat16):
        p = choose_precision(CPU, name)
        assert p.name == "bfloat16" and p.autocast_dtype == torch.bfloat16
        assert "asked for" in p.reason
    cuda = choose_precision(torch.device("cuda"), "float32")
    assert cuda.weight_dtype == torch.float32
    assert probe.runs == 0
    with pytest.raises(PrecisionError, match="unknown dtype"):
        choose_precision(CPU, "int3")


def test_cuda_follows_bf16_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Test GPU")
    for supported, name in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        p = choose_precision(torch.device("cuda"))
        assert p.name == name and p.autocast_dtype is None and "Test GPU" in p.reason


def test_training_takes_the_same_choice(monkeypatch: pytest.MonkeyPatch, probe: Probe) -> None:
    from entrodrop.training.run import use_bf16

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _machine(monkeypatch, AVX2)
    assert use_bf16(RunConfig()) is False
    assert use_bf16(RunConfig(dtype="bfloat16")) is True
    _machine(monkeypatch, BF16)
    assert use_bf16(RunConfig()) is True
    assert use_bf16(RunConfig(dtype="float32")) is False


def test_real_cpu_facts_come_from_torch() -> None:
    facts = precision.cpu_facts()
    assert facts.capability == torch.backends.cpu.get_cpu_capability()
    assert facts.key().endswith(torch.__version__)


def test_threads_follow_the_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "REUSE_S", 0.0)  # decide afresh on every call
    monkeypatch.setattr(threads, "idle_cores", lambda: 0.2)
    assert threads.threads_for_now(2) == 1
    monkeypatch.setattr(threads, "idle_cores", lambda: 7.6)
    assert threads.threads_for_now(2) == 2
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "idle_cores", lambda: 1.0)
    with threads.cpu_threads(CPU) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_recent_thread_count_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    samples: list[float] = []

    def idle() -> float:
        samples.append(1.0)
        return 1.0

    monkeypatch.setattr(threads, "_last", (-1e9, 0, 0))
    monkeypatch.setattr(threads, "REUSE_S", 3600.0)  # never stale within the test
    monkeypatch.setattr(threads, "idle_cores", idle)
    assert threads.threads_for_now(2) == threads.threads_for_now(2) == 1
    assert len(samples) == 1
    assert threads.threads_for_now(4) == 1 and len(samples) == 2  # another default: sampled again
