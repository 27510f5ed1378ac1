"""The disk estimate: a tiny run's real folder against it, and the checkpoint policy it follows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import entrodrop
from entrodrop import disk
from entrodrop.config import RunConfig


def folder_bytes(folder: Path) -> int:
    return sum(os.path.getsize(Path(r) / f) for r, _, files in os.walk(folder) for f in files)


def tiny_config(model: Path, data: Path, **kw: object) -> RunConfig:
    base: dict[str, object] = {
        "model": str(model), "dataset": str(data), "max_steps": 12, "seq_len": 32,
        "batch_size": 4, "eval_every": 4, "max_train_tokens": 4096, "max_eval_tokens": 256,
    }  # fmt: skip
    return RunConfig(**(base | kw))  # type: ignore[arg-type]


def test_the_estimate_is_within_20_percent_of_a_tiny_runs_folder(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    from entrodrop.training.run import train

    # Keep 2: the last two stay, and the best too when it is step 4's; the estimate counts the
    # limit plus the best (3), the most that can stay.
    config = tiny_config(tiny_model_dir, small_corpus, save_total_limit=2)
    summary = train(config, tmp_path / "run")
    assert summary["status"] == "succeeded"
    model_cfg = json.loads((tiny_model_dir / "config.json").read_text())
    size = disk.model_size(tiny_model_dir)
    assert size.measured and size.params == entrodrop.load(str(tiny_model_dir)).n_params
    tokens = summary["timing"]["train_tokens"]
    est = disk.run_disk(config, size, 12, tokens, model_cfg)
    real = folder_bytes(tmp_path / "run")
    assert est.checkpoints_saved == 3 and est.checkpoints_kept == 3  # steps 4, 8, 12; keep 2+best
    kept = len(list((tmp_path / "run").glob("checkpoint-*")))
    assert kept in (2, 3)  # the last two, and the best when it is step 4
    ckpt_bytes = est.checkpoint_bytes
    assert est.final_bytes - (3 - kept) * ckpt_bytes == pytest.approx(real, rel=0.2), (est, real)
    ckpt = folder_bytes(tmp_path / "run" / "checkpoint-12")
    assert est.checkpoint_bytes == pytest.approx(ckpt, rel=0.2)
    assert est.model_bytes == pytest.approx(folder_bytes(tmp_path / "run" / "model"), rel=0.2)


def test_the_estimate_follows_the_checkpoint_policy(tiny_model_dir: Path) -> None:
    model_cfg = json.loads((tiny_model_dir / "config.json").read_text())
    size = disk.model_size(tiny_model_dir)
    base = RunConfig(model=str(tiny_model_dir), max_steps=100, eval_every=10)
    full = disk.run_disk(base, size, 100, 4096, model_cfg)
    keep = base.save_total_limit + 1  # the limit, and the best beside them
    assert full.checkpoints_saved == 10 and full.checkpoints_kept == keep
    # At its largest a run holds one checkpoint more than it keeps (written before rotation).
    assert full.peak_bytes >= (keep + 1) * full.checkpoint_bytes

    lean_config = base.model_copy(update={"save_total_limit": 1, "save_only_model": True})
    lean = disk.run_disk(lean_config, size, 100, 4096, model_cfg)
    assert lean.checkpoints_kept == 2
    # No optimizer state: AdamW's two moments were 8 of a checkpoint's ~12 bytes a parameter.
    assert lean.checkpoint_bytes < full.checkpoint_bytes - 7 * size.params
    none = disk.run_disk(base.model_copy(update={"save_checkpoints": False, "save_model": False}),
                         size, 100, 4096, model_cfg)  # fmt: skip
    assert none.checkpoints_saved == 0 and none.model_bytes == 0
    assert none.final_bytes == none.peak_bytes == disk.RUN_FILES_BYTES


def test_parameters_from_a_config_match_the_files(tiny_model_dir: Path) -> None:
    model_cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert disk.params_from_config(model_cfg)[0] == disk.model_size(tiny_model_dir).params
    # SmolLM2-135M's config (the default model): 134,515,008 parameters.
    smol = {"hidden_size": 576, "num_hidden_layers": 30, "vocab_size": 49152,
            "num_attention_heads": 9, "num_key_value_heads": 3, "intermediate_size": 1536,
            "tie_word_embeddings": True}  # fmt: skip
    assert disk.params_from_config(smol)[0] == 134_515_008
    folder = tiny_model_dir.parent / "config-only"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(smol))
    assert disk.model_size(folder) == disk.ModelSize(134_515_008, 272, 2_000_000, measured=False)


def test_free_bytes_looks_at_the_nearest_existing_folder(tmp_path: Path) -> None:
    assert disk.free_bytes(tmp_path / "not" / "yet") == disk.free_bytes(tmp_path) > 0
