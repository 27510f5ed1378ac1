"""The training entry point under `accelerate launch` and torchrun: 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from waiting import PATIENCE_S

from entrodrop.config import RunConfig
from entrodrop.runfolder import RunFolder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launcher(kind: str) -> list[str]:
    if kind == "accelerate":
        # `--cpu` would start one process (accelerate's simple launcher); `--multi_gpu` on a
        # machine without GPUs starts torch.distributed processes that train on the CPU (gloo).
        return [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        ]  # fmt: skip
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.mark.processes
@pytest.mark.parametrize("kind", ["accelerate", "torchrun"])
def test_two_cpu_processes_train_and_write_once(
    kind: str, tiny_model_dir: Path, tmp_path: Path, entrodrop_home: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = RunConfig(
        model=str(tiny_model_dir),
        dataset="python-reference",
        # Online input mode: each process stores every process's entropies (an all-gather);
        # 16 blocks, 2 per process per step: steps 1-4 see each block once, 5-6 drop.
        entrodrop={"entropy_source": "online", "drop_mode": "input", "schedule": "constant"},
        max_steps=6,
        eval_every=3,
        seq_len=32,
        batch_size=2,
        max_train_tokens=512,
        max_eval_tokens=256,
        record_train_tokens=512,  # the token record follows every training token too
    )
    (run_dir / "config.json").write_text(config.model_dump_json())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [*launcher(kind), "-m", "entrodrop.training.run", "--run-dir", str(run_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=PATIENCE_S)
    assert proc.returncode == 0, proc.stderr[-3000:]

    folder = RunFolder(run_dir)
    status = folder.read_status()
    assert status["status"] == "succeeded" and status["step"] == 6
    assert "processes: 2" in folder.log_path.read_text()
    rows = folder.read_metrics()
    counts = Counter((r["step"], r["name"]) for r in rows)
    assert counts and max(counts.values()) == 1  # written by the main process only
    # step 0: the starting model; step 1: the first training loss; then every eval_every
    assert {step for step, _ in counts} == {0, 1, 3, 6}
    fraction = {r["step"]: r["value"] for r in rows if r["name"] == "drop/fraction_realised"}
    assert fraction[1] == fraction[3] == 0.0 and fraction[6] > 0.0
    assert (run_dir / "model" / "model.safetensors").is_file()
    assert {p.name for p in (run_dir / "checkpoint-6").glob("entrodrop_state_*")} == {
        "entrodrop_state_0.safetensors",
        "entrodrop_state_1.safetensors",
    }
    # The token record: each process scored its own rows; one sum put them together.
    record = folder.read_tokens()
    curve = {r["step"]: r["value"] for r in rows if r["name"] == "eval/loss"}
    assert record.steps.tolist() == [0, 3, 6]
    assert record.heldout_means() == pytest.approx([curve[s] for s in (0, 3, 6)], abs=1e-4)
    train = record.probe.of_source("train")
    assert train.sum() == 16 * 31 and record.drops is not None
    assert record.loss[:, train].min() > 0  # every training token scored by one process
    dropped = round(fraction[6] * 3 * 2 * 2 * 31)  # steps 4-6 x 2 processes x 2 blocks x 31
    assert record.drops[-1, train].astype(int).sum() == dropped > 0
    # The pre-pass ran once (main process first, the other read the cache): one file per set.
    assert len(list((entrodrop_home / "cache" / "reference").glob("*.safetensors"))) == 2
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "succeeded"


def test_end_process_group_tears_down_the_group_and_is_a_no_op_without_one(tmp_path: Path) -> None:
    """main() ends the group itself: left to the interpreter's exit, gloo can abort a process
    whose run succeeded (SIGABRT, "terminate called without an active exception")."""
    import torch.distributed as dist

    from entrodrop.training.run import end_process_group

    end_process_group()  # no group: nothing to do, no error
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        end_process_group()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.processes
def test_two_processes_train_on_chat_examples_of_different_lengths(
    tiny_chat_model_dir: Path, tmp_path: Path
) -> None:
    from data_files import variant, write

    # Examples of different lengths: each rank's padded batch has its own width, and the online
    # input mode gathers every rank's entropies (at the memory's width) after each step.
    records = [variant("alpaca", i) for i in range(10)]
    for i, record in enumerate(records):
        record["output"] += " More words." * (i % 4)
    path = write(tmp_path / "chat.jsonl", records)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = RunConfig(
        model=str(tiny_chat_model_dir), dataset=str(path), seq_len=256, batch_size=1,
        entrodrop={"entropy_source": "online", "drop_mode": "input", "schedule": "constant"},
        max_steps=8, eval_every=4, max_eval_tokens=512, save_model=False,
    )  # fmt: skip
    (run_dir / "config.json").write_text(config.model_dump_json())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [*launcher("torchrun"), "-m", "entrodrop.training.run", "--run-dir", str(run_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=PATIENCE_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["data"]["format"] == "alpaca"
    fraction = {r["step"]: r["value"] for r in RunFolder(run_dir).read_metrics()}
    assert summary["final"]["drop/fraction_realised"] > 0.0, fraction
