"""Model specs: local folders, the default checkpoint, run:<id>, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import entrodrop
from entrodrop import models
from entrodrop.models import ModelLoadError, pick_precision, resolve_spec
from entrodrop.precision import choose_precision


def test_local_folder_loads(tiny_model_dir: Path) -> None:
    loaded = entrodrop.load(str(tiny_model_dir), device="cpu")
    assert loaded.name == tiny_model_dir.name
    assert loaded.device == torch.device("cpu")
    # CPU default: fp32 weights; bf16 autocast only where this CPU has it natively
    assert loaded.precision == choose_precision(torch.device("cpu"))
    assert loaded.autocast_dtype == loaded.precision.autocast_dtype
    info = loaded.describe()
    assert info["architecture"] == "LlamaForCausalLM" and info["n_params"] > 0


def test_precision_choices(tiny_model_dir: Path) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert pick_precision(cpu, "float32").autocast_dtype is None
    assert pick_precision(cpu, "bfloat16").autocast_dtype == torch.bfloat16  # fp32 weights
    assert pick_precision(cuda, "bfloat16").weight_dtype == torch.bfloat16
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        pick_precision(cpu, "int3")
    loaded = entrodrop.load(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert loaded.describe()["precision"] == {
        "name": "bfloat16",
        "reason": "bfloat16 autocast: asked for explicitly",
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no model folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no config.json"),
    ],
)
def test_missing_and_empty_folders(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        entrodrop.load(str(make(tmp_path)))


def test_pickle_only_checkpoint_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "pickle"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "model.safetensors").rename(bad / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors only"):
        entrodrop.load(str(bad))


def test_corrupt_weights_give_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match="cannot load"):
        entrodrop.load(str(bad))


def test_not_a_causal_lm(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "vit"}))
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="not a causal language model"):
        entrodrop.load(str(folder))


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        entrodrop.load(str(f))


def test_hub_ids_are_recognised_without_network() -> None:
    assert resolve_spec("HuggingFaceTB/SmolLM2-135M") == ("HuggingFaceTB/SmolLM2-135M", False)
    with pytest.raises(ModelLoadError):
        resolve_spec("not a/valid id!")
    with pytest.raises(ModelLoadError, match="empty"):
        resolve_spec("  ")


def test_run_spec_resolves_final_model_then_checkpoint(
    tiny_model_dir: Path, entrodrop_home: Path
) -> None:
    run = entrodrop_home / "runs" / "r1"
    for step in (4, 12):  # complete checkpoints: weights and the Trainer's state
        shutil.copytree(tiny_model_dir, run / f"checkpoint-{step}")
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert resolve_spec("run:r1")[0].endswith("checkpoint-12")
    shutil.copytree(tiny_model_dir, run / "model")
    assert resolve_spec("run:r1")[0].endswith("model")
    assert entrodrop.load("run:r1").name == "run:r1"
    with pytest.raises(ModelLoadError, match="no run"):
        resolve_spec("run:nope")
    with pytest.raises(ModelLoadError, match="invalid run id"):
        resolve_spec("run:../etc")


def test_run_step_spec_loads_that_checkpoint(tiny_model_dir: Path, entrodrop_home: Path) -> None:
    run = entrodrop_home / "runs" / "r1"
    for step in (4, 12):
        shutil.copytree(tiny_model_dir, run / f"checkpoint-{step}")
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    shutil.copytree(tiny_model_dir, run / "checkpoint-16")  # half-written: no trainer state
    assert resolve_spec("run:r1:4")[0].endswith("checkpoint-4")
    loaded = entrodrop.load("run:r1:12")
    assert loaded.name == "run:r1:12" and loaded.path.endswith("checkpoint-12")
    with pytest.raises(ModelLoadError, match=r"no checkpoint at step 16 \(kept: 4, 12\)"):
        resolve_spec("run:r1:16")
    for bad in ("run:r1:best-ish", "run:r1:", "run:r1:-4", "run:r1:99999999999"):
        with pytest.raises(ModelLoadError, match=r"run:<id>:<step>"):
            resolve_spec(bad)
    with pytest.raises(ModelLoadError, match="no run"):
        resolve_spec("run:nope:4")


@pytest.mark.slow
def test_default_checkpoint_is_cached_as_safetensors(
    default_loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(default_loaded.path)
    assert (path / "model.safetensors").is_file()
    cfg = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in cfg  # else the Trainer refuses to fine-tune it

    def no_conversion(*args: object) -> None:
        raise AssertionError("the cached checkpoint was converted again")

    monkeypatch.setattr(models, "_convert_gguf", no_conversion)
    again = entrodrop.load("default")  # from the cache: no GGUF conversion
    assert again.n_params == default_loaded.n_params == 134_515_008
