"""Starting, signalling and reaping training processes: one launcher for the server and the CLI.

A run is a process (`python -m entrodrop.training.run --run-dir DIR`, or the same module under
`accelerate launch`), started from an argument list in its own session, its output appended to
the run folder's ``output.txt``; a stop is a signal to its whole process tree plus the STOP
file (the run-folder contract). The dashboard's queue (app/runs/runner.py) and `entrodrop study`
(entrodrop/studies/local.py) both start runs here, so a CLI study can use accelerate or FSDP
exactly as the dashboard does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import psutil
from pydantic import BaseModel, ConfigDict, Field, model_validator

from entrodrop import runfolder as rf

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
    run_dir: Path,
    launcher: Launcher,
    resume: bool,
    entry: Sequence[str] = DEFAULT_ENTRY,
    port: int | None = None,
    evaluate: bool = False,
) -> list[str]:
    """The training process's argument list (never a shell string); `port`: the rendezvous port
    of a multi-process launch (accelerate's default, 29500, would clash between two runs);
    `evaluate`: benchmark the finished run instead of training it."""
    flags = ["--resume"] if resume else []
    flags += ["--evaluate"] if evaluate else []
    tail = [*entry, "--run-dir", str(run_dir), *flags]
    if launcher.kind == "single":
        return [sys.executable, *tail]
    rendezvous = ["--main_process_port", str(port)] if port is not None else []
    return [
        sys.executable, "-m", "accelerate.commands.launch", *launcher.launch_flags(),
        *rendezvous, "--mixed_precision", "no", "--dynamo_backend", "no", *tail,
    ]  # fmt: skip


def free_port() -> int:
    """A TCP port free on loopback now, for a launch's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


# ---------------------------------------------------------------- starting and stopping

# Set by a launcher that must not leave its runs training without it (`entrodrop study`): once
# that process is gone, the run stops cleanly as if asked to (the server's runs outlive it by
# design, and it recovers them, so it does not set this).
PARENT_ENV = "ENTRODROP_PARENT_PID"


def parent_alive() -> bool:
    """False once the process named by ENTRODROP_PARENT_PID has ended (True when unset)."""
    value = os.environ.get(PARENT_ENV, "")
    if not value.isdigit():
        return True
    try:
        os.kill(int(value), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's (the pid was reused): treat as gone
        return False
    return True


# The checkout or site-packages folder this library is imported from: children import the same
# code (a server run from a checkout must not train with another installed copy).
CODE_ROOT = Path(__file__).resolve().parents[1]


def child_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a training process: this one's, its home, unbuffered output."""
    env = dict(os.environ)
    env["ENTRODROP_HOME"] = str(home)  # run:<id> specs and caches resolve in this home
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CODE_ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


@dataclass
class RunProcess:
    """A training process started by :func:`start`: its Popen, its folder, its stop deadline."""

    proc: subprocess.Popen[bytes]
    run_dir: Path
    launched_at: float  # wall clock: status.json older than this is from an earlier attempt
    kill_at: float | None = field(default=None)  # SIGKILL deadline after a stop request

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        """The exit code once the process has ended (negative: killed by that signal), else None."""
        return self.proc.poll()

    def stop(self, grace_s: float) -> None:
        """Ask the run to stop cleanly (it checkpoints); :meth:`enforce` kills it after grace_s."""
        if self.kill_at is None:
            request_stop(self.proc.pid, self.run_dir)
            self.kill_at = time.monotonic() + grace_s

    def enforce(self, now: float | None = None) -> None:
        """SIGKILL the process tree once its stop deadline has passed."""
        if self.kill_at is not None and (now or time.monotonic()) >= self.kill_at:
            signal_tree(self.proc.pid, signal.SIGKILL)
            self.kill_at = None


def start(
    run_dir: Path,
    launcher: Launcher,
    resume: bool,
    env: Mapping[str, str],
    attempt: int = 1,
    entry: Sequence[str] = DEFAULT_ENTRY,
    evaluate: bool = False,
) -> RunProcess:
    """Start a run's training process from its folder (config.json written first).

    Its stdout and stderr go to the folder's output.txt after an ATTEMPT_HEADER line; it gets its
    own session (process group), so one signal reaches every worker. A STOP file of an earlier
    attempt is removed first (it would stop this one at once). OSError if it cannot start.
    """
    (run_dir / rf.STOP).unlink(missing_ok=True)
    port = free_port() if launcher.kind == "accelerate" and launcher.num_processes > 1 else None
    argv = child_argv(run_dir, launcher, resume, entry, port, evaluate)
    out: IO[bytes] = (run_dir / rf.OUTPUT).open("ab")
    try:
        out.write(f"{rf.ATTEMPT_HEADER}{attempt}: {' '.join(argv)}\n".encode())
        out.flush()
        launched_at = time.time()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(run_dir),
            env=dict(env),
            start_new_session=True,  # its own process group: signals reach all its workers
        )
    finally:
        out.close()  # the child holds its own copy of the descriptor
    return RunProcess(proc=proc, run_dir=run_dir, launched_at=launched_at)


def request_stop(pid: int, run_dir: Path) -> None:
    """Both ways the run-folder contract offers to stop a run cleanly.

    SIGTERM reaches a child that is still loading; the STOP file reaches every accelerate worker
    even if a launcher swallows the signal. Signal first: a child that saw STOP and is already
    exiting may have reset its handlers.
    """
    signal_tree(pid, signal.SIGTERM)
    with contextlib.suppress(OSError):
        (run_dir / rf.STOP).touch()


def failure_message(run_dir: Path, status: Mapping[str, object], code: int) -> str:
    """Why a run failed: the child's own message (status.json), else its output's error line."""
    error = status.get("error") if isinstance(status.get("error"), str) else None
    if not error and code != 0:
        tail = rf.tail_lines(run_dir / rf.OUTPUT, 60) or rf.tail_lines(run_dir / rf.LOG, 60)
        error = rf.error_from_lines(tail)
    if code < 0:  # killed by a signal: say so first, it is the likelier cause
        return f"{rf.describe_exit(code)}: {error}" if error else rf.describe_exit(code)
    if error:
        return str(error)
    if code != 0:
        return rf.describe_exit(code)
    return "the training process exited without reporting a final status"


def outcome(run_dir: Path, process: RunProcess, code: int) -> tuple[str, str | None]:
    """A finished process's run status and error: what its status.json says, checked against
    its exit code (a process that wrote `succeeded` and then crashed did not succeed)."""
    st = rf.read_status(run_dir, since=process.launched_at) or {}
    final = st.get("status")
    if final == "succeeded" and code == 0:
        return "succeeded", None
    if final == "cancelled":
        return "cancelled", None
    return "failed", failure_message(run_dir, st, code)
