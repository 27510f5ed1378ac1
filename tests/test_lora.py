"""LoRA adapters (peft) on the tiny model: train, save the adapter alone, resume, score through
Inspect; the reference source scores the base with adapters off; every baseline; bad configs;
the GPU knobs and the FSDP launcher's arguments."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import ValidationError

import entrodrop
from app.main import create_app
from app.runs.storage import RunRecord, Storage
from app.settings import Settings
from entrodrop import runfolder as rf
from entrodrop.adapters import AdapterUnavailable, base_weights, check_adapter, wrap_with_adapter
from entrodrop.config import AdapterConfig, RunConfig, effective_batch, effective_batch_text
from entrodrop.launch import FSDP_FLAGS, Launcher, child_argv, headless_commands
from entrodrop.training.baselines import apply_hidden_dropout
from entrodrop.training.reference import forward_token_stats
from entrodrop.training.run import TrainingFailed, train

LORA = {"kind": "lora", "r": 4, "alpha": 8, "dropout": 0.0}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread


def lora_config(model: Path, data: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = {
        "model": str(model), "dataset": str(data), "max_steps": 4, "seq_len": 32,
        "batch_size": 4, "eval_every": 2, "max_train_tokens": 2048, "max_eval_tokens": 256,
        "learning_rate": 1e-2, "adapter": LORA,
    }  # fmt: skip
    base.update(kw)
    return RunConfig(**base)


def adapter_only(folder: Path) -> None:
    """The folder holds a whole adapter in safetensors and no full weights."""
    names = {p.name for p in folder.iterdir()}
    assert set(rf.ADAPTER_FILES) <= names and "tokenizer.json" in names
    assert not names & set(rf.WEIGHT_FILES)
    assert not [
        n for n in names if n.endswith((".bin", ".pt")) and n.startswith(("adapter", "model"))
    ]


def register(home: Path, run_id: str, config: RunConfig) -> None:
    """Record a finished run in the server's database, as the job runner would."""
    storage = Storage(home / "entrodrop.db")
    storage.open()
    now = time.time()
    storage.create_run(
        RunRecord(run_id, now, now, now, "succeeded", config.model_dump(mode="json"),
                  Launcher().model_dump(), started_at=now, finished_at=now, step=4)
    )  # fmt: skip
    storage.close()


# ---------------------------------------------------------------- train, save, resume, score


def test_lora_entrodrop_run_saves_resumes_and_scores_in_inspect(
    tiny_model_dir: Path, small_corpus: Path, entrodrop_home: Path
) -> None:
    run_id = rf.new_run_id()
    run_dir = entrodrop_home / "runs" / run_id
    cfg = lora_config(
        tiny_model_dir,
        small_corpus,
        entrodrop={"entropy_source": "reference", "drop_mode": "input"},
        save_total_limit=2,  # checkpoint-2 stays beside checkpoint-4: the resume below uses it
    )
    rf.write_text_atomic(run_dir / rf.CONFIG, cfg.model_dump_json())
    summary = train(cfg, run_dir)
    assert summary["status"] == "succeeded" and summary["steps"] == 4
    adapter_only(run_dir / rf.MODEL)
    adapter_only(rf.checkpoint_dir(run_dir, 4))
    assert rf.has_final_model(run_dir) and rf.latest_checkpoint(run_dir) == rf.checkpoint_dir(
        run_dir, 4
    )
    log = (run_dir / rf.LOG).read_text()
    assert "lora adapter r=4" in log and "effective batch: 4 blocks" in log

    # Resume: the run lost its final model and its last checkpoint; it continues from step 2.
    shutil.rmtree(run_dir / rf.MODEL)
    shutil.rmtree(rf.checkpoint_dir(run_dir, 4))
    resumed = train(cfg, run_dir, resume=True)
    assert resumed["status"] == "succeeded" and resumed["steps"] == 4
    assert "resuming from checkpoint-2" in (run_dir / rf.LOG).read_text()
    adapter_only(run_dir / rf.MODEL)

    # run:<id> is base + adapter merged: plain weights, different from the base's.
    merged = entrodrop.load(f"run:{run_id}", device="cpu", dtype="float32")
    base = entrodrop.load(str(tiny_model_dir), device="cpu", dtype="float32")
    assert merged.name == f"run:{run_id}" and not hasattr(merged.model, "peft_config")
    ids = torch.arange(1, 17).unsqueeze(0)
    with torch.no_grad():
        assert not torch.allclose(merged.model(ids).logits, base.model(ids).logits)
    # run:<id>:<step> is that checkpoint's adapter on the same base: the weights of step 2.
    early = entrodrop.load(f"run:{run_id}:2", device="cpu", dtype="float32")
    assert early.name == f"run:{run_id}:2" and early.path.endswith("checkpoint-2")
    with torch.no_grad():
        logits = early.model(ids).logits
        assert not torch.allclose(logits, merged.model(ids).logits)
        assert not torch.allclose(logits, base.model(ids).logits)

    register(entrodrop_home, run_id, cfg)
    settings = Settings(home=entrodrop_home, load_model_on_startup=False)
    with TestClient(create_app(settings)) as client:
        res = client.post(
            "/api/score", json={"text": "def f(x): return x", "model": f"run:{run_id}"}
        )
        assert res.status_code == 200, res.text
        assert res.json()["model"] == f"run:{run_id}" and len(res.json()["tokens"]) > 3
        detail = client.get(f"/api/runs/{run_id}").json()  # the run view shows the effective batch
        assert detail["effective_batch"].startswith("4 blocks = 128 tokens per step")
        assert "Effective batch: 4 blocks" in client.get(f"/runs/{run_id}").text
        # A finished LoRA run is a valid starting model for a new run.
        check = client.post("/api/runs/check", json={"model": f"run:{run_id}"})
        assert check.status_code == 200, check.text


def test_a_local_adapter_folder_loads_on_its_named_base(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = entrodrop.load(str(tiny_model_dir), device="cpu", dtype="float32").model
    wrapped = wrap_with_adapter(model, AdapterConfig(**LORA), str(tiny_model_dir))
    for name, p in wrapped.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # a trained adapter: B is no longer zero
    folder = tmp_path / "my-adapter"
    wrapped.save_pretrained(str(folder), safe_serialization=True)
    assert rf.has_weights(folder)
    loaded = entrodrop.load(str(folder), device="cpu", dtype="float32")
    ids = torch.arange(1, 17).unsqueeze(0)
    with torch.no_grad():
        expected = wrapped(input_ids=ids).logits
        assert torch.allclose(loaded.model(ids).logits, expected, atol=1e-4)


# ---------------------------------------------------------------- reference source


def test_reference_source_scores_the_base_model_with_adapters_disabled(
    tiny_model_dir: Path,
) -> None:
    base = entrodrop.load(str(tiny_model_dir), device="cpu", dtype="float32")
    blocks = torch.randint(3, 300, (3, 24), generator=torch.Generator().manual_seed(0))
    expected = forward_token_stats(base.model, blocks, None).entropy
    model = entrodrop.load(str(tiny_model_dir), device="cpu", dtype="float32").model
    wrapped = wrap_with_adapter(model, AdapterConfig(**LORA), str(tiny_model_dir))
    for name, p in wrapped.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    with base_weights(wrapped):
        off = forward_token_stats(wrapped, blocks, None).entropy
    on = forward_token_stats(wrapped, blocks, None).entropy
    assert torch.allclose(off, expected, atol=1e-5, equal_nan=True)
    assert not torch.allclose(on, expected, atol=1e-3, equal_nan=True)  # the adapter is live
    # One copy of the weights: the peft model wraps the base's own tensors.
    assert sum(p.numel() for p in wrapped.parameters() if not p.requires_grad) == base.n_params


# ---------------------------------------------------------------- every method with LoRA


@pytest.mark.parametrize(
    "method,extra",
    [
        ("entrodrop", {"entrodrop": {"entropy_source": "online", "drop_mode": "loss"}}),
        ("entrodrop", {"entrodrop": {"entropy_source": "online", "drop_mode": "input"}}),
        ("entrodrop", {"entrodrop": {"entropy_source": "reference", "drop_mode": "both"}}),
        ("random", {"entrodrop": {"entropy_source": "reference", "drop_mode": "input"}}),
        ("none", {"gradient_checkpointing": True, "max_grad_norm": 0.5}),
        ("weight_decay", {}),
        ("hidden_dropout", {}),
        ("label_smoothing", {}),
        ("neftune", {}),
    ],
)
def test_lora_with_each_method(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, method: str, extra: dict[str, Any]
) -> None:
    run_dir = tmp_path / "run"
    cfg = lora_config(tiny_model_dir, small_corpus, method=method, max_steps=2, **extra)
    summary = train(cfg, run_dir)
    assert summary["status"] == "succeeded" and summary["steps"] == 2
    adapter_only(run_dir / rf.MODEL)
    assert json.loads((run_dir / rf.MODEL / rf.ADAPTER_CONFIG).read_text())["r"] == 4
    assert summary["final"]["train/grad_norm"] > 0  # the adapter got gradients


def test_hidden_dropout_leaves_the_adapter_dropout_alone(tiny_model_dir: Path) -> None:
    model = entrodrop.load(str(tiny_model_dir), device="cpu", dtype="float32").model
    adapter = AdapterConfig(kind="lora", r=4, dropout=0.05, target_modules=["q_proj", "o_proj"])
    wrapped = wrap_with_adapter(model, adapter, str(tiny_model_dir))
    patch = apply_hidden_dropout(wrapped, 0.3)
    lora_dropouts = [m for n, m in wrapped.named_modules() if n.endswith("lora_dropout.default")]
    assert lora_dropouts and all(m.p == 0.05 for m in lora_dropouts)
    assert len(patch.hooks) == 2 * 2  # o_proj and down_proj of both layers: residual dropout


# ---------------------------------------------------------------- bad adapter configs


@pytest.mark.parametrize(
    "adapter,message",
    [
        ({"kind": "lora", "r": 0}, "greater than or equal to 1"),
        ({"kind": "dora"}, "'lora' or 'qlora'"),
        ({"kind": "lora", "target_modules": []}, "at least one module name"),
        ({"kind": "lora", "target_modules": ["q_proj; rm"]}, "not a module name"),
        ({"kind": "lora", "target_modules": 5}, "all-linear"),
        ({"kind": "lora", "target_modules": " , "}, "at least one module name"),
        ({"kind": "lora", "alpha": float("nan")}, "adapter.alpha"),
        ({"kind": "lora", "dropout": 1.0}, "less than 1"),
        ({"kind": "lora", "rank": 8}, "Extra inputs are not permitted"),
    ],
)
def test_bad_adapter_configs_are_refused_with_a_message(
    adapter: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        RunConfig(adapter=adapter)


def test_target_modules_take_comma_separated_names() -> None:
    assert AdapterConfig(target_modules="q_proj, v_proj").target_modules == ["q_proj", "v_proj"]
    assert AdapterConfig(target_modules=" all-linear ").target_modules == "all-linear"


def test_the_new_run_form_offers_the_adapter_and_the_knobs(entrodrop_home: Path) -> None:
    settings = Settings(home=entrodrop_home, load_model_on_startup=False)
    with TestClient(create_app(settings)) as client:
        form = client.get("/api/runs/form").json()
        page = client.get("/runs/new").text
    advanced = {f["name"]: f for f in form["advanced_fields"]}
    assert advanced["gradient_checkpointing"]["kind"] == "bool"
    assert advanced["max_grad_norm"]["kind"] == "float" and advanced["max_grad_norm"]["min"] == 0
    adapter = {f["name"]: f for f in form["adapter_fields"]}
    assert adapter["adapter.kind"]["options"] == [form["no_adapter"], "lora", "qlora"]
    assert form["values"]["adapter.kind"] == form["no_adapter"]  # full weights by default
    assert form["values"]["adapter.r"] == 16 and adapter["adapter.target_modules"]["kind"] == "text"
    for name in ("adapter.kind", "adapter.r", "adapter.target_modules", "max_grad_norm"):
        assert f'data-field="{name}"' in page


def test_bad_adapter_errors_sit_at_their_field_in_the_api(entrodrop_home: Path) -> None:
    settings = Settings(home=entrodrop_home, load_model_on_startup=False)
    with TestClient(create_app(settings)) as client:
        res = client.post("/api/runs/check", json={"adapter": {"kind": "lora", "r": -1}})
        assert res.status_code == 422
        assert "adapter" in json.dumps(res.json()) and "r" in json.dumps(res.json())
        if not torch.cuda.is_available():  # QLoRA needs CUDA: refused here with the reason
            res = client.post("/api/runs/check", json={"adapter": {"kind": "qlora"}})
            assert res.status_code == 422 and "CUDA" in res.text


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA"
)
def test_qlora_without_cuda_fails_the_run_with_the_reason(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(AdapterUnavailable, match="CUDA"):
        check_adapter(AdapterConfig(kind="qlora"))
    cfg = lora_config(tiny_model_dir, small_corpus, adapter={"kind": "qlora"})
    with pytest.raises(TrainingFailed, match="QLoRA needs a CUDA GPU"):
        train(cfg, tmp_path / "run")
    assert "QLoRA" in rf.RunFolder(tmp_path / "run").read_status()["error"]


def test_an_unknown_target_module_fails_the_run_clearly(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    cfg = lora_config(
        tiny_model_dir, small_corpus, adapter={"kind": "lora", "target_modules": ["qkv"]}
    )
    with pytest.raises(TrainingFailed, match="cannot add the adapter"):
        train(cfg, tmp_path / "run")


# ---------------------------------------------------------------- run folder contract


def test_an_adapter_checkpoint_counts_only_when_whole(tmp_path: Path) -> None:
    ckpt = rf.checkpoint_dir(tmp_path, 2)
    ckpt.mkdir(parents=True)
    (ckpt / rf.TRAINER_STATE).write_text("{}")
    (ckpt / rf.ADAPTER_CONFIG).write_text("{}")
    assert not rf.is_complete_checkpoint(ckpt)  # killed before the adapter weights
    (ckpt / rf.ADAPTER_WEIGHTS).write_bytes(b"x")
    assert rf.is_complete_checkpoint(ckpt) and rf.latest_checkpoint(tmp_path) == ckpt
    model = tmp_path / rf.MODEL
    model.mkdir()
    (model / rf.ADAPTER_WEIGHTS).write_bytes(b"x")
    assert not rf.has_final_model(tmp_path)
    (model / rf.ADAPTER_CONFIG).write_text("{}")
    assert rf.has_final_model(tmp_path) and rf.run_model_dir(tmp_path) == model


def test_peft_file_names_match_peft_own() -> None:
    from peft.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME

    assert (rf.ADAPTER_CONFIG, rf.ADAPTER_WEIGHTS) == (CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME)


# ---------------------------------------------------------------- knobs and launchers


def test_effective_batch_is_batch_times_accumulation_times_processes() -> None:
    cfg = RunConfig(batch_size=4, grad_accum=8, seq_len=128)
    assert effective_batch(cfg) == 32 and effective_batch(cfg, processes=2) == 64
    assert effective_batch_text(cfg, 2).startswith("64 blocks = 8192 tokens per step")


def test_fsdp_launcher_argv_and_headless_command(tmp_path: Path) -> None:
    launcher = Launcher(kind="accelerate", num_processes=4, fsdp=True)
    argv = child_argv(tmp_path, launcher, resume=True)
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    assert argv[3 : 3 + len(FSDP_FLAGS)] == list(FSDP_FLAGS) and "--multi_gpu" not in argv
    assert argv[argv.index("--num_processes") + 1] == "4"
    assert argv[-4:] == ["entrodrop.training.run", "--run-dir", str(tmp_path), "--resume"]
    command = headless_commands(launcher)[-1]
    assert command.startswith("accelerate launch --use_fsdp ") and "--num_processes 4" in command
    # accelerate's own parser accepts every flag we pass.
    from accelerate.commands.launch import launch_command_parser

    parsed = launch_command_parser().parse_args(argv[3:])
    assert parsed.use_fsdp and parsed.fsdp_sharding_strategy == "FULL_SHARD"
    with pytest.raises(ValidationError, match="accelerate launcher"):
        Launcher(kind="single", fsdp=True)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA"
)
def test_fsdp_is_refused_at_submit_time_without_gpus(entrodrop_home: Path) -> None:
    # accelerate itself refuses FSDP without an accelerator (tried: "no available devices"), so
    # the form says so before a process is started.
    settings = Settings(home=entrodrop_home, load_model_on_startup=False)
    body = {"launcher": {"kind": "accelerate", "num_processes": 2, "fsdp": True}}
    with TestClient(create_app(settings)) as client:
        res = client.post("/api/runs/check", json=body)
    assert res.status_code == 422 and "FSDP needs GPUs" in res.text


def test_train_command_takes_the_adapter_flags(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from entrodrop.cli import app

    run_dir = tmp_path / "run"
    args = ["train", "--model", str(tiny_model_dir), "--dataset", str(small_corpus), "--run-dir"]
    args += [str(run_dir), "--max-steps", "1", "--seq-len", "32", "--max-train-tokens", "512"]
    args += ["--max-eval-tokens", "128", "--threads", "1", "--adapter-kind", "lora"]
    args += ["--adapter-r", "2", "--adapter-target-modules", '["q_proj", "v_proj"]']
    args += ["--gradient-checkpointing", "--max-grad-norm", "0.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = rf.RunFolder(run_dir).read_config()
    assert saved.adapter == AdapterConfig(r=2, target_modules=["q_proj", "v_proj"])
    assert saved.gradient_checkpointing and saved.max_grad_norm == 0.5
    adapter_only(run_dir / rf.MODEL)
    bad = CliRunner().invoke(app, ["train", "--adapter-kind", "lora", "--adapter-r", "0"])
    assert bad.exit_code == 2 and "adapter.r" in bad.output
