"""How a training process is started and stopped: its argument list, the headless commands
that reproduce it, and signals to its whole process tree (torchrun workers included)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import psutil
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_ENTRY: tuple[str, ...] = ("-m", "entrodrop.training.run")
# accelerate launch's FSDP switches (docs/bigger_models.md): shard parameters, gradients and
# optimizer state over the processes, one wrap per transformer block (the model's own
# _no_split_modules), original parameters kept so a LoRA run may mix frozen and trainable
# ones, and a full state dict at save time so checkpoints and model/ stay plain safetensors.
FSDP_FLAGS: tuple[str, ...] = (
    "--use_fsdp", "--fsdp_version", "1", "--fsdp_sharding_strategy", "FULL_SHARD",
    "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP", "--fsdp_use_orig_params", "true",
    "--fsdp_state_dict_type", "FULL_STATE_DICT", "--fsdp_sync_module_states", "true",
)  # fmt: skip


class Launcher(BaseModel):
    """How a run's process is started: one process, or `accelerate launch` with N processes
    (data parallel, or FSDP: the model sharded over the processes' GPUs)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["single", "accelerate"] = "single"
    num_processes: int = Field(1, ge=1, le=64)
    fsdp: bool = Field(False, description="shard the model over the processes (GPUs) with FSDP")

    @model_validator(mode="after")
    def _fsdp_needs_accelerate(self) -> Launcher:
        if self.fsdp and self.kind != "accelerate":
            raise ValueError("FSDP runs under the accelerate launcher: set kind 'accelerate'")
        return self

    def launch_flags(self) -> list[str]:
        """accelerate launch's flags for this launcher (before the module to run)."""
        n = self.num_processes
        # --multi_gpu is accelerate's switch for torch.distributed workers; on a CPU-only
        # machine the workers use gloo. With one process (or FSDP, its own switch) it is left out.
        multi = ["--multi_gpu"] if n > 1 and not self.fsdp else []
        mode = list(FSDP_FLAGS) if self.fsdp else multi
        return [*mode, "--num_processes", str(n), "--num_machines", "1"]


def launcher_problem(launcher: Launcher) -> str | None:
    """Why this machine cannot start the launcher, or None (FSDP: accelerate needs a GPU)."""
    if launcher.fsdp:
        import torch

        if not torch.cuda.is_available():
            return "FSDP needs GPUs: accelerate refuses it on a machine without CUDA"
    return None


def child_argv(
    run_dir: Path, launcher: Launcher, resume: bool, entry: Sequence[str] = DEFAULT_ENTRY
) -> list[str]:
    """The training process's argument list (never a shell string)."""
    tail = [*entry, "--run-dir", str(run_dir), *(["--resume"] if resume else [])]
    if launcher.kind == "single":
        return [sys.executable, *tail]
    return [
        sys.executable, "-m", "accelerate.commands.launch", *launcher.launch_flags(),
        "--mixed_precision", "no", "--dynamo_backend", "no", *tail,
    ]  # fmt: skip


def headless_commands(launcher: Launcher, config_file: str = "run.json") -> list[str]:
    """Shell commands that reproduce a run without the dashboard, given its config JSON file."""
    if launcher.kind == "single":
        return [f"entrodrop train --config {config_file}"]
    flags = " ".join(launcher.launch_flags())
    return [
        f"mkdir -p my-run && cp {config_file} my-run/config.json",
        f"accelerate launch {flags} -m entrodrop.training.run --run-dir my-run",
    ]


def signal_tree(pid: int, sig: int) -> None:
    """Signal a run's process group and every descendant (torchrun workers get their own groups)."""
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # start_new_session: the group id is the leader's pid
    for proc in descendants:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def process_alive(pid: int | None, run_dir: Path) -> bool:
    """True if `pid` is a live (not zombie) process working on `run_dir` (guards pid reuse)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return str(run_dir) in proc.cmdline()
    except psutil.Error:
        return False


def find_orphan(run_dir: Path) -> int | None:
    """The pid of a live process started for `run_dir` by an earlier server, if any."""
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        info = proc.info
        cmd = info.get("cmdline") or []
        if (
            info.get("status") != psutil.STATUS_ZOMBIE
            and str(run_dir) in cmd
            and "--run-dir" in cmd
        ):
            return int(info["pid"])
    return None
