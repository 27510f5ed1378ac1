"""Training overhead: step time of plain fine-tuning vs EntroDrop (online, reference) vs random.

One process, one model (the default checkpoint), the same batch (4 x 128 tokens), seed and data
for every method. The methods take turns: each round trains every method for `--steps` steps
with a fresh EntroDropTrainer (the library's own, as `entrodrop.training.run` builds it), and a
callback times each optimizer step (forward, drop, backward, update); the first `--warmup` steps
of each turn are dropped. Ratios: pooled medians, and the median over rounds of the per-round
ratio to plain fine-tuning (turns next to each other share the machine's noise), on the wall
clock and on the process's CPU clock: with one torch thread (the default here: on a shared CPU,
two threads spin against other users' processes and run 3-4x slower), CPU time counts this
process's own work, so it is the steadier measure on a shared machine. The reference method's
pre-pass (the frozen model scoring the training blocks once, cache cold) is timed separately.
Run: `.venv/bin/python bench/bench_training.py` (about 15-25 min on the shared 2-core CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, percentile, print_table, write_result  # noqa: E402

CLOCKS = ("wall", "cpu")  # CPU time: the process's own work, little affected by other users
Turns = dict[str, dict[str, list[float]]]  # method -> clock -> step times of one turn
METHODS: dict[str, dict[str, Any]] = {
    "none": {"method": "none"},
    "entrodrop-online": {"method": "entrodrop", "entrodrop": {"entropy_source": "online"}},
    "entrodrop-reference": {"method": "entrodrop", "entrodrop": {"entropy_source": "reference"}},
    "random": {"method": "random"},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6, help="turns per method")
    p.add_argument("--steps", type=int, default=3, help="steps per turn")
    p.add_argument("--warmup", type=int, default=1, help="steps dropped at the start of each turn")
    p.add_argument("--train-tokens", type=int, default=4096, help="training blocks (and pre-pass)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    return p.parse_args(argv)


def make_config(name: str, steps: int, train_tokens: int) -> Any:
    from entrodrop.config import RunConfig

    spec = METHODS[name]
    return RunConfig(
        model="default",
        method=spec["method"],
        entrodrop={"drop_mode": "loss", **spec.get("entrodrop", {})},
        max_steps=steps,
        batch_size=4,
        seq_len=128,
        learning_rate=5e-5,
        eval_every=10**6,  # no evaluation inside the timed turns
        seed=0,
        max_train_tokens=train_tokens,
        max_eval_tokens=256,
        save_checkpoints=False,
    )


def step_timer() -> Any:
    """A TrainerCallback that records the wall and the process CPU time of every optimizer step."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: dict[str, list[float]] = {clock: [] for clock in CLOCKS}
            self._t0 = (0.0, 0.0)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._t0 = (time.perf_counter(), time.process_time())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.times["wall"].append(time.perf_counter() - self._t0[0])
            self.times["cpu"].append(time.process_time() - self._t0[1])

    return StepTimer()


def reference_prepass(model: Any, data: Any, fp: str) -> tuple[Any, float]:
    """Score the training blocks with the frozen model (cold cache): entropies and seconds."""
    import torch

    from entrodrop.training.reference import reference_entropies

    t0 = time.perf_counter()
    entropies = reference_entropies(model, data.train, fp, torch.bfloat16, label="training")
    return entropies, time.perf_counter() - t0


def online_parts(vocab: int, repeats: int = 10) -> dict[str, float]:
    """Median CPU seconds of what the online loss mode adds to a step, on a step's logits."""
    import torch

    from entrodrop.config import EntroDropConfig
    from entrodrop.scoring import token_entropies
    from entrodrop.training.drops import DropPolicy

    logits = torch.randn(4, 128, vocab, dtype=torch.bfloat16)  # a batch's logits under autocast
    entropies = token_entropies(logits)
    policy = DropPolicy(EntroDropConfig(), "entrodrop")
    parts = {
        "token_entropies": lambda: token_entropies(logits),
        "select_drops": lambda: policy.select(entropies, 0.9),
    }
    out = {}
    for name, fn in parts.items():
        times = []
        for _ in range(repeats):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
        out[f"{name}_cpu_s"] = median(times)
    return out


def one_turn(
    name: str, model: Any, tokenizer: Any, data: Any, ref: Any, args: Any
) -> dict[str, list[float]]:
    """Train `args.steps` steps of one method with a fresh trainer; per-step wall and CPU times."""
    from transformers import PrinterCallback

    from entrodrop.training.collator import BlockDataset, EntroDropCollator
    from entrodrop.training.run import DROP_METHODS, training_args
    from entrodrop.training.trainer import EntroDropTrainer

    config = make_config(name, args.steps, args.train_tokens)
    timer = step_timer()
    with tempfile.TemporaryDirectory(prefix="bench-training-") as out:
        use_ref = config.method in DROP_METHODS and config.entrodrop.entropy_source == "reference"
        trainer = EntroDropTrainer(
            model=model,
            args=training_args(config, Path(out), progress=False),
            train_dataset=BlockDataset(data.train, ref if use_ref else None),
            eval_dataset=BlockDataset(data.heldout[:1]),
            processing_class=tokenizer,
            data_collator=EntroDropCollator(),
            entrodrop=config.entrodrop if config.method in DROP_METHODS else None,
            drop_method="random" if config.method == "random" else "entrodrop",
            callbacks=[timer],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return {clock: ts[args.warmup :] for clock, ts in timer.times.items()}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from entrodrop.training.reference import model_fingerprint
    from entrodrop.training.run import load_model, load_run_data

    if args.threads:
        torch.set_num_threads(args.threads)
    config = make_config("none", args.steps, args.train_tokens)
    loaded = load_model(config)
    data = load_run_data(config, loaded.tokenizer)
    ref, prepass_s = reference_prepass(loaded.model, data, model_fingerprint(loaded.path))
    rounds: list[Turns] = []
    for r in range(args.rounds):
        turn = {
            name: one_turn(name, loaded.model, loaded.tokenizer, data, ref, args)
            for name in METHODS
        }
        print(
            f"round {r + 1}/{args.rounds} wall s/step: "
            + ", ".join(f"{n} {median(t['wall']):.2f}" for n, t in turn.items()),
            flush=True,
        )
        rounds.append(turn)
    return {
        "rounds": rounds,
        "online_parts": online_parts(loaded.model.config.vocab_size),
        "prepass_s": prepass_s,
        "prepass_tokens": int(data.train.numel()),
        "threads": torch.get_num_threads(),
    }


def pooled(rounds: list[Turns], name: str, clock: str) -> list[float]:
    return [t for turn in rounds for t in turn[name][clock]]


def paired_ratios(rounds: list[Turns], name: str, clock: str) -> list[float]:
    """Per round, median step time of `name` over that of plain fine-tuning in the same round."""
    return [median(turn[name][clock]) / median(turn["none"][clock]) for turn in rounds]


def method_row(rounds: list[Turns], name: str, clock: str) -> dict[str, Any]:
    ts = pooled(rounds, name, clock)
    paired = paired_ratios(rounds, name, clock)
    return {
        "method": name,
        "clock": clock,
        "steps": len(ts),
        "median_s": median(ts),
        "p90_s": percentile(ts, 90),
        "ratio_pooled": median(ts) / median(pooled(rounds, "none", clock)),
        "ratio_paired": median(paired),
        "paired_min": min(paired),
        "paired_max": max(paired),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("ENTRODROP_HOME", tempfile.mkdtemp(prefix="bench-training-home-"))
    result = measure(args)
    rounds = result["rounds"]
    rows = [method_row(rounds, name, clock) for clock in CLOCKS for name in METHODS]
    print_table(rows, list(rows[0]))
    base = median(pooled(rounds, "none", "wall"))
    prepass = {
        "seconds": result["prepass_s"],
        "tokens": result["prepass_tokens"],
        "seconds_per_1k_tokens": result["prepass_s"] / result["prepass_tokens"] * 1000,
        "in_plain_steps": result["prepass_s"] / base,
    }
    print(
        f"reference pre-pass: {prepass['seconds']:.1f} s for {prepass['tokens']} tokens "
        f"(= {prepass['in_plain_steps']:.1f} plain steps of wall time; cached for later runs)"
    )
    parts = result["online_parts"]
    plain_cpu = median(pooled(rounds, "none", "cpu"))
    parts_share = {k: v / plain_cpu for k, v in parts.items()}
    print(f"online mode's extra work, CPU s (share of a plain step): {parts} {parts_share}")
    online = {clock: median(paired_ratios(rounds, "entrodrop-online", clock)) for clock in CLOCKS}
    print(f"online / plain, paired by round: {online} (goal <= 1.03)")
    write_result(
        "training",
        {
            "command": "python bench/bench_training.py " + " ".join(sys.argv[1:]),
            "settings": {**vars(args), "torch_threads_used": result["threads"]},
            "batch": "4 x 128 tokens, bf16 autocast, default checkpoint",
            "rows": rows,
            "reference_prepass": prepass,
            "online_parts_cpu_s": parts,
            "online_parts_share_of_plain_step": parts_share,
            "step_times_by_round_s": rounds,
            "online_ratio": online,
            "goal_online_ratio": 1.03,
            "goal_met": {clock: r <= 1.03 for clock, r in online.items()},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
