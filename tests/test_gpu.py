"""Checks that need a CUDA GPU (marker `cuda`): run by bench/gpu_check.sh on a GPU machine.

Where torch sees no CUDA device every test here is skipped with that reason (explicitly, by the
skipif below, never silently); on a GPU they must pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import entrodrop
from entrodrop import runfolder as rf
from entrodrop.config import RunConfig
from entrodrop.training.run import train

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA device: run bench/gpu_check.sh on a GPU"
    ),
]


def cfg(model: Path, data: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = {
        "model": str(model), "dataset": str(data), "max_steps": 2, "seq_len": 32,
        "batch_size": 4, "eval_every": 1, "max_train_tokens": 2048, "max_eval_tokens": 256,
        "entrodrop": {"entropy_source": "reference", "drop_mode": "input"},
    }  # fmt: skip
    return RunConfig(**{**base, **kw})


def test_scoring_on_cuda_agrees_with_the_cpu(tiny_model_dir: Path) -> None:
    text = "def add(a, b):\n    return a + b\n"
    gpu = entrodrop.load(str(tiny_model_dir), device="cuda")
    cpu = entrodrop.load(str(tiny_model_dir), device="cpu", dtype="float32")
    assert gpu.device.type == "cuda" and next(gpu.model.parameters()).dtype == torch.bfloat16
    on_gpu, on_cpu = entrodrop.score(gpu, text), entrodrop.score(cpu, text)
    assert on_gpu.ids == on_cpu.ids
    gpu_h = torch.tensor(on_gpu.entropy[1:], dtype=torch.float32)  # token 0 has no prediction
    cpu_h = torch.tensor(on_cpu.entropy[1:], dtype=torch.float32)
    assert torch.allclose(gpu_h, cpu_h, atol=0.05)  # bf16 weights vs float32


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"adapter": {"kind": "lora", "r": 4}},
        {"adapter": {"kind": "lora", "r": 4}, "gradient_checkpointing": True},
    ],
)
def test_entrodrop_runs_on_cuda_in_bf16(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, extra: dict[str, Any]
) -> None:
    run_dir = tmp_path / "run"
    summary = train(cfg(tiny_model_dir, small_corpus, **extra), run_dir)
    assert summary["status"] == "succeeded" and summary["steps"] == 2
    log = (run_dir / rf.LOG).read_text()
    assert "device: cuda" in log and "bf16 autocast: True" in log
    weights = rf.ADAPTER_WEIGHTS if "adapter" in extra else "model.safetensors"
    assert (run_dir / rf.MODEL / weights).is_file()
    assert entrodrop.load(str(run_dir / rf.MODEL), device="cuda").device.type == "cuda"


def test_qlora_run_on_cuda(tiny_model_dir: Path, small_corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip(
        "bitsandbytes", reason="QLoRA needs bitsandbytes (pip install bitsandbytes)"
    )
    run_dir = tmp_path / "run"
    summary = train(cfg(tiny_model_dir, small_corpus, adapter={"kind": "qlora", "r": 4}), run_dir)
    assert summary["status"] == "succeeded"
    assert (run_dir / rf.MODEL / rf.ADAPTER_WEIGHTS).is_file()
