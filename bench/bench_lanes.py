"""Study lanes: training throughput of N one-thread processes side by side vs one N-thread process.

`entrodrop study --workers N` trains N runs at once, each in its own process with one torch
thread. This measures whether that beats the plain layout (one run at a time with N threads) on
this machine: both layouts train the default model on the same 8 x 128-token batches with AdamW
(a training step as the study's runs take it). The layouts take turns, `--rounds` each; a turn
times `--steps` steps after `--warmup` steps in every process, and throughput is optimizer steps
per second over all processes (for lanes: each lane's steps over the wall time both lanes took).
Ratio: the median over rounds of lanes' throughput over the plain layout's in the same round.
Run it on an otherwise idle machine: `.venv/bin/python bench/bench_lanes.py` (about 5 minutes
on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, print_table, write_result  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lanes", type=int, default=os.cpu_count() or 2, help="processes (N)")
    p.add_argument("--rounds", type=int, default=2, help="turns per layout")
    p.add_argument("--steps", type=int, default=4, help="timed steps per turn")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocator, caches)")
    p.add_argument(
        "--worker", nargs=2, type=int, metavar=("THREADS", "STEPS"), help=argparse.SUPPRESS
    )
    return p.parse_args(argv)


def worker(threads: int, warmup: int, steps: int) -> None:
    """Train the default model for warmup + steps steps; print the timed steps' start and end."""
    import torch

    import entrodrop

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = entrodrop.load("default", device="cpu", dtype="float32").model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, model.config.vocab_size, (8, 128))
    start = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            start = time.time()  # wall clock, comparable across the lanes' processes
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    print(f"TIMED {start} {time.time()}", flush=True)


def turn(processes: int, threads: int, warmup: int, steps: int) -> float:
    """Steps per second of `processes` workers with `threads` threads each, side by side."""
    argv = [sys.executable, __file__, "--worker", str(threads), str(steps)]
    argv += ["--warmup", str(warmup)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(processes)
    ]
    spans = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed (exit {proc.returncode})")
        line = next(x for x in out.splitlines() if x.startswith("TIMED "))
        spans.append(tuple(float(x) for x in line.split()[1:]))
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return processes * steps / wall


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.warmup, args.worker[1])
        return 0
    n = args.lanes
    layouts = {f"1 process x {n} threads": (1, n), f"{n} lanes x 1 thread": (n, 1)}
    rate: dict[str, list[float]] = {name: [] for name in layouts}
    for r in range(args.rounds):
        for name, (processes, threads) in layouts.items():
            rate[name].append(turn(processes, threads, args.warmup, args.steps))
            print(f"round {r + 1}: {name}: {rate[name][-1]:.3f} steps/s", flush=True)
    plain, lanes = rate.values()
    ratios = [b / a for a, b in zip(plain, lanes, strict=True)]
    rows: list[dict[str, Any]] = [
        {"layout": name, "median steps/s": median(xs), "s/step": 1 / median(xs)}
        for name, xs in rate.items()
    ]
    print_table(rows, ["layout", "median steps/s", "s/step"])
    print(f"lanes vs one process: {median(ratios):.2f}x (per round: "
          f"{', '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip
    write_result("lanes", {"args": vars(args), "steps_per_s": rate, "ratio": median(ratios)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
