"""Priors for how long a run's parts take on a machine that has not run that model yet.

A training step costs about 6 x parameters x tokens floating-point operations (forward and
backward), a forward pass 2 x parameters x tokens. The machine's speed comes from a short
measured probe: a float32 matrix product on the device a run would use, timed once per process
(~0.2 s). Real passes reach only part of that (smaller matrices, attention, the optimizer,
Python): the efficiencies below were measured with the default model on a shared 2-core CPU,
where they varied with the load, so a prior is rough (within about a factor of 3); a run that
has finished on this machine replaces it with measurements.
"""

from __future__ import annotations

import functools
import time

import torch

# Shares of the probe's FLOP/s that real passes reached with the default model on the shared
# 2-core CPU: training steps (forward, backward, AdamW) 0.1-0.26 and forward passes 0.2-0.46
# under a load average of 7-20, and about 1 in the reproduction's quieter runs (11 s for a
# 1,024-token step, docs/benchmarks.md). The middle keeps a prior within ~3x of either.
TRAIN_EFFICIENCY = 0.5
FORWARD_EFFICIENCY = 0.5
MIN_STEP_S = 0.05  # a tiny model's step is Python and bookkeeping, not arithmetic
MIN_FORWARD_S = 0.02
STARTUP_PRIOR_S = 20.0  # a training process: interpreter, torch and transformers, data, Trainer
LOAD_BYTES_PER_S = 200e6  # reading float32 weights from local disk
WRITE_BYTES_PER_S = 150e6  # writing a checkpoint or the final model
# BPE vocabularies of English and code: about 4 characters a token (the priors that count text).
CHARS_PER_TOKEN = 4.0
PROBE_SIZE = 1024
PROBE_S = 0.2


@functools.cache
def probe_flops(device: str = "cpu") -> float:
    """Float32 FLOP/s of a PROBE_SIZE matrix product on `device`, measured once per process."""
    dev = torch.device(device)
    a = torch.randn(PROBE_SIZE, PROBE_SIZE, device=dev)
    b = torch.randn(PROBE_SIZE, PROBE_SIZE, device=dev)
    for _ in range(2):  # warm-up (kernels, thread pools)
        a @ b
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < PROBE_S:
        a @ b
        done += 1
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return 2 * PROBE_SIZE**3 * done / (time.perf_counter() - t0)


def run_device() -> str:
    """The device a training process would use here."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def step_prior_s(params: int, tokens: int, flops: float) -> float:
    """One training step of `tokens` tokens (all processes' share) at `flops` FLOP/s."""
    return max(MIN_STEP_S, 6 * params * tokens / (flops * TRAIN_EFFICIENCY))


def forward_prior_s(params: int, tokens: int, flops: float) -> float:
    """A forward pass over `tokens` tokens (an evaluation, the reference pre-pass)."""
    return max(MIN_FORWARD_S, 2 * params * tokens / (flops * FORWARD_EFFICIENCY))


def startup_prior_s(params: int) -> float:
    """Starting a training process and loading a model of `params` float32 parameters."""
    return STARTUP_PRIOR_S + 4 * params / LOAD_BYTES_PER_S


def write_prior_s(nbytes: int) -> float:
    """Writing `nbytes` to disk (a checkpoint, the final model)."""
    return 0.1 + nbytes / WRITE_BYTES_PER_S
