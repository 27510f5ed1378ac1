"""Export on the tiny model: a full run and a LoRA run (adapter alone and merged) become Hugging
Face folders that from_pretrained loads and that score as the run itself does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import entrodrop
from entrodrop import runfolder as rf
from entrodrop.cli import app
from entrodrop.config import RunConfig
from entrodrop.export import ExportError, export_run, zip_chunks
from entrodrop.training.run import train

TEXT = "The for statement is used to iterate over the elements of a sequence."
PICKLES = (".bin", ".pt", ".pth", ".pkl")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread


def tiny_run(model: Path, data: Path, run_dir: Path, **kw: Any) -> dict[str, Any]:
    cfg = RunConfig(
        model=str(model), dataset=str(data), method="none", max_steps=4, seq_len=32,
        batch_size=4, eval_every=1, max_train_tokens=256, max_eval_tokens=256,
        learning_rate=0.03, **kw,
    )  # fmt: skip
    rf.RunFolder(run_dir).write_config(cfg)  # as the launcher does (the export reads it)
    summary = train(cfg, run_dir)
    assert summary["status"] == "succeeded"
    return summary


def entropies(spec: str, runs: Path) -> list[float | None]:
    loaded = entrodrop.load(spec, device="cpu", dtype="float32", runs_dir=runs)
    return [t["entropy"] for t in entrodrop.score(loaded, TEXT, top_k=0).to_dict()["tokens"]]


def assert_same(a: list[float | None], b: list[float | None]) -> None:
    assert len(a) == len(b) and a[0] is None and b[0] is None
    assert torch.allclose(torch.tensor(a[1:]), torch.tensor(b[1:]), atol=1e-5)


def assert_hf_folder(out: Path, weights: str) -> None:
    names = {p.name for p in out.iterdir()}
    assert {weights, "tokenizer.json", "generation_config.json", "README.md"} <= names
    assert "entrodrop_run_config.json" in names and rf.TRAINER_STATE not in names
    assert not [n for n in names if n.endswith(PICKLES) or n.startswith("entrodrop_state")]


def test_a_full_run_exports_best_and_final_folders_that_load_and_score_the_same(
    tiny_model_dir: Path, small_corpus: Path, entrodrop_home: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    runs = entrodrop_home / "runs"
    summary = tiny_run(tiny_model_dir, small_corpus, runs / "full")
    best = export_run(runs / "full", "best", tmp_path / "best")
    assert best.kind == "full" and best.step == summary["best_step"]
    assert best.source == rf.checkpoint_dir(runs / "full", summary["best_step"])
    assert_hf_folder(best.folder, "model.safetensors")
    model = AutoModelForCausalLM.from_pretrained(str(best.folder))
    AutoTokenizer.from_pretrained(str(best.folder))
    assert model.config.vocab_size > 0
    assert_same(entropies(str(best.folder), runs), entropies("run:full:best", runs))

    card = (best.folder / "README.md").read_text()
    for fact in (
        f"Fine-tuned from `{tiny_model_dir}`", "Method: **none**", "`learning_rate` | 0.03",
        f"step {summary['best_step']} (best)", "Best evaluation (by held-out: all tokens)",
        f"entrodrop train --config {best.folder}/entrodrop_run_config.json",
        f"huggingface-cli upload <your-name>/<model-name> {best.folder} .",
    ):  # fmt: skip
        assert fact in card, fact
    saved = RunConfig.model_validate_json((best.folder / "entrodrop_run_config.json").read_text())
    assert saved.learning_rate == 0.03 and saved.model == str(tiny_model_dir)

    # The command line: `entrodrop export` then `entrodrop score --model DIR` = run:<id>.
    out = tmp_path / "final"
    cli = CliRunner()
    done = cli.invoke(app, ["export", "full", "--checkpoint", "final", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "huggingface-cli upload" in done.output and str(out) in done.output
    scored = [
        json.loads(
            cli.invoke(app, ["score", TEXT, "--model", m, "--json", "--dtype", "float32"]).stdout
        )
        for m in (str(out), "run:full")
    ]
    assert_same(*([t["entropy"] for t in s["tokens"]] for s in scored))

    refused = cli.invoke(app, ["export", "full", "--merge", "--out", str(tmp_path / "m")])
    assert refused.exit_code == 2 and "--merge is for LoRA runs" in refused.output


def test_a_lora_run_exports_its_adapter_alone_and_merged(
    tiny_model_dir: Path, small_corpus: Path, entrodrop_home: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    runs = entrodrop_home / "runs"
    adapter = {"kind": "lora", "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    tiny_run(tiny_model_dir, small_corpus, runs / "lora", adapter=adapter)
    alone = export_run(runs / "lora", "final", tmp_path / "adapter")
    assert alone.kind == "adapter" and alone.source == runs / "lora" / rf.MODEL
    assert_hf_folder(alone.folder, "adapter_model.safetensors")
    assert "model.safetensors" not in {p.name for p in alone.folder.iterdir()}
    config = json.loads((alone.folder / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]) == tiny_model_dir
    peft_model = AutoModelForCausalLM.from_pretrained(str(alone.folder))  # the base + adapter
    assert hasattr(peft_model, "peft_config")
    assert "library_name: peft" in (alone.folder / "README.md").read_text()
    run_scores = entropies("run:lora", runs)
    assert_same(entropies(str(alone.folder), runs), run_scores)
    # its best checkpoint is an adapter too, loaded on the same base
    best = export_run(runs / "lora", "best", tmp_path / "best-adapter")
    assert best.kind == "adapter" and best.source == rf.best_checkpoint(runs / "lora")
    assert_same(entropies(str(best.folder), runs), entropies("run:lora:best", runs))

    merged = export_run(runs / "lora", "final", tmp_path / "merged", merge=True)
    assert merged.kind == "merged"
    assert_hf_folder(merged.folder, "model.safetensors")
    assert not (merged.folder / "adapter_config.json").exists()
    plain = AutoModelForCausalLM.from_pretrained(str(merged.folder))
    assert not hasattr(plain, "peft_config")
    assert_same(entropies(str(merged.folder), runs), run_scores)


def test_export_errors_and_the_zip_stream(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import shutil
    import zipfile
    from collections import namedtuple

    from entrodrop.export import DiskTooSmall, check_disk

    run_dir = tmp_path / "run"
    tiny_run(tiny_model_dir, small_corpus, run_dir, save_checkpoints=False)
    with pytest.raises(ExportError, match="has no best checkpoint"):
        export_run(run_dir, "best", tmp_path / "out")
    with pytest.raises(ExportError, match="not a run folder"):
        export_run(tmp_path / "nothing", "final", tmp_path / "out")
    need = check_disk(run_dir, "final", tmp_path / "new" / "out")  # a folder not made yet
    weights = (run_dir / rf.MODEL / "model.safetensors").stat().st_size
    assert weights < need < weights + 10_000_000
    usage = namedtuple("usage", "total used free")
    with monkeypatch.context() as patch, pytest.raises(DiskTooSmall, match="export needs about"):
        patch.setattr(shutil, "disk_usage", lambda path: usage(need, need, need // 2))
        check_disk(run_dir, "final", tmp_path / "out")
    done = export_run(run_dir, "final", tmp_path / "out")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zip_chunks(done.folder, chunk=4096))))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(f"out/{name}" for name in done.files)
    weights = archive.read("out/model.safetensors")
    assert weights == (done.folder / "model.safetensors").read_bytes()


def test_the_cards_tags_name_the_method_once(tmp_path: Path) -> None:
    from entrodrop.export import Export
    from entrodrop.export_card import card_text

    export = Export(tmp_path, "r1", "final", tmp_path, 4, "full")
    tags = [
        line
        for method in ("entrodrop", "random")
        for line in card_text(RunConfig(method=method), export, tmp_path, {}, {}).splitlines()
        if line.startswith("tags:")
    ]
    assert tags == ["tags: [entrodrop]", "tags: [entrodrop, random]"]
