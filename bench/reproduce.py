"""Small-scale reproduction: multi-epoch fine-tuning on a python-reference slice, EntroDrop vs baselines.

Every run goes through the library's own entry point (`python -m entrodrop.training.run`) in its
own folder under bench/results/reproduction/; a finished run (summary.json with status succeeded
and the same config) is skipped, so a rerun continues where the last one stopped. Phase 1 runs
every variant with seed 0, and `none` with seed 1 too; phase 2 runs the leading variants (see
`leaders`) with seed 1. The starting model's own evaluation is epoch 0 of every curve. Writes
bench/results/reproduction.json (every curve), bench/results/reproduction_high_entropy.png
(held-out high-entropy-token loss per epoch) and bench/results/reproduction_curves.png.

Run: `.venv/bin/python bench/reproduce.py` (2 runs at a time, one torch thread each: about an
hour on the shared 2-core CPU of docs/benchmarks.md). Set ENTRODROP_MODEL_CACHE to reuse the
converted default model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, print_table, write_result  # noqa: E402

RUNS_DIR = RESULTS / "reproduction"
PLOT = RESULTS / "reproduction_high_entropy.png"
PLOT_ALL = RESULTS / "reproduction_curves.png"
CURVES = ("eval/loss", "eval/loss_high_entropy", "eval/loss_low_entropy", "general/loss")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variant:
    """One method setting of the sweep: a RunConfig method plus its parameters."""

    name: str
    method: str
    entrodrop: dict[str, Any] = field(default_factory=dict)
    strength: float | None = None


VARIANTS = (
    Variant("none", "none"),
    Variant("weight_decay", "weight_decay", strength=0.1),
    Variant("hidden_dropout", "hidden_dropout", strength=0.1),
    Variant("label_smoothing", "label_smoothing", strength=0.1),
    Variant("random", "random", {"quantile": 0.5, "rate_max": 0.5, "drop_mode": "loss"}),
    Variant("entrodrop-loss-q50-r50", "entrodrop", {"quantile": 0.5, "rate_max": 0.5}),
    Variant(
        "entrodrop-input-q50-r50",
        "entrodrop",
        {"quantile": 0.5, "rate_max": 0.5, "drop_mode": "input"},
    ),
    Variant("entrodrop-loss-q30-r90", "entrodrop", {"quantile": 0.3, "rate_max": 0.9}),
    Variant(
        "entrodrop-loss-q50-r90-mid25",
        "entrodrop",
        {"quantile": 0.5, "rate_max": 0.9, "midpoint": 0.25},
    ),
    Variant(
        "random-input-q50-r50",
        "random",
        {"quantile": 0.5, "rate_max": 0.5, "drop_mode": "input"},
    ),
    Variant(
        "random-r90-mid25",
        "random",
        {"quantile": 0.5, "rate_max": 0.9, "midpoint": 0.25, "drop_mode": "loss"},
    ),
)
ED_DEFAULTS = {
    "entropy_source": "online",
    "schedule": "sigmoid",
    "steepness": 10.0,
    "midpoint": 0.5,
}


# ---------------------------------------------------------------- configs and run folders


def run_config(variant: Variant, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig (as JSON data) of one variant and seed; everything but the method is shared."""
    from entrodrop.config import RunConfig

    steps_per_epoch = args.train_tokens // (args.seq_len * args.batch_size)
    config = RunConfig(
        model="default",
        dataset="python-reference",
        method=variant.method,
        entrodrop={"drop_mode": "loss", **ED_DEFAULTS, **variant.entrodrop, "seed": seed},
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        eval_every=steps_per_epoch,
        seed=seed,
        baseline_strength=variant.strength,
        max_train_tokens=args.train_tokens,
        max_eval_tokens=args.eval_tokens,
        save_checkpoints=False,
    )
    return config.model_dump(mode="json")


def run_dir(variant: Variant, seed: int) -> Path:
    return RUNS_DIR / f"{variant.name}-s{seed}"


def is_complete(folder: Path, config: dict[str, Any]) -> bool:
    """A finished run of exactly this config (a changed sweep setting reruns it)."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
        saved = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return summary.get("status") == "succeeded" and saved == config


def child_env(threads: int) -> dict[str, str]:
    """One BLAS/OpenMP thread per run by default: on a shared CPU, oversubscribed threads spin."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    env.setdefault("ENTRODROP_HOME", str(RESULTS / "tmp" / "reproduction-home"))
    return env


def launch(folder: Path, config: dict[str, Any], env: dict[str, str]) -> bool:
    """Train one run in a child process; the final model is deleted once the metrics are in."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    t0 = time.time()
    with open(folder / "stdout.txt", "w") as out:
        cmd = [sys.executable, "-m", "entrodrop.training.run", "--run-dir", str(folder)]
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    shutil.rmtree(folder / "model", ignore_errors=True)
    for checkpoint in folder.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    print(f"{folder.name}: exit {rc} after {time.time() - t0:.0f} s", flush=True)
    return rc == 0


def run_all(jobs: list[tuple[Variant, int]], args: argparse.Namespace) -> None:
    """Run the (variant, seed) pairs not yet complete, `args.jobs` at a time."""
    env = child_env(args.threads)
    todo = [
        (run_dir(v, s), run_config(v, s, args))
        for v, s in jobs
        if not is_complete(run_dir(v, s), run_config(v, s, args))
    ]
    print(f"{len(jobs) - len(todo)} runs already complete, {len(todo)} to run", flush=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(lambda job: launch(job[0], job[1], env), todo))


# ---------------------------------------------------------------- epoch 0: the starting model


def initial_eval(args: argparse.Namespace) -> dict[str, float]:
    """Diagnostics of the starting model on the runs' own held-out/general blocks (cached)."""
    path = RUNS_DIR / "initial.json"
    config = run_config(VARIANTS[0], 0, args)
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("config") == config:
            return saved["metrics"]
    os.environ.update(child_env(args.threads))
    import torch

    from entrodrop.config import RunConfig
    from entrodrop.training.run import load_model, load_run_data, reference_pass

    torch.set_num_threads(args.threads)
    run = RunConfig.model_validate(config)
    loaded = load_model(run)
    data = load_run_data(run, loaded.tokenizer)
    prepared = reference_pass(run, loaded, data, torch.bfloat16)
    metrics = prepared.diagnostics.evaluate(loaded.model)
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": config, "metrics": metrics}, indent=2))
    return metrics


# ---------------------------------------------------------------- reading the runs


def read_curves(folder: Path, steps_per_epoch: int) -> dict[str, list[float]]:
    """Per-epoch values of each evaluated metric (index 0 is epoch 1) and the train loss."""
    curves: dict[str, dict[int, float]] = {}
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        name = row["name"]
        if name in CURVES or name in ("train/loss", "drop/fraction_realised"):
            epoch = max(1, round(row["step"] / steps_per_epoch))
            curves.setdefault(name, {})[epoch] = row["value"]
    return {name: [v for _, v in sorted(c.items())] for name, c in curves.items()}


def eval_cost(folder: Path) -> dict[str, float]:
    """Median seconds of one evaluation and of one training step, from the metric rows' times.

    An evaluation runs right after the training log of the same step; the steps of an epoch run
    between one evaluation and the next training log.
    """
    first: dict[tuple[int, str], float] = {}
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        first.setdefault((row["step"], row["name"].split("/")[0]), row["time"])
    evals = sorted(s for s, kind in first if kind == "eval")
    eval_s = [first[(s, "eval")] - first[(s, "train")] for s in evals if (s, "train") in first]
    step_s = [
        (first[(b, "train")] - first[(a, "eval")]) / (b - a)
        for a, b in zip(evals, evals[1:], strict=False)
        if (b, "train") in first
    ]
    return {"eval_s": statistics.median(eval_s), "step_s": statistics.median(step_s)}


def run_record(variant: Variant, seed: int, args: argparse.Namespace) -> dict[str, Any] | None:
    folder = run_dir(variant, seed)
    if not is_complete(folder, run_config(variant, seed, args)):
        return None
    summary = json.loads((folder / "summary.json").read_text())
    spe = args.train_tokens // (args.seq_len * args.batch_size)
    return {
        "variant": variant.name,
        "seed": seed,
        "config": run_config(variant, seed, args),
        "curves": read_curves(folder, spe),
        "step_time_s": summary.get("step_time_s"),
        "timing": eval_cost(folder),
        "wall_s": summary.get("wall_s"),
    }


def leaders(records: list[dict[str, Any]], n: int) -> list[str]:
    """Variants run with seed 1: none, the `n` best others by final held-out loss (seed 0), and
    the best EntroDrop variant if it is not among them."""
    ranked = [
        r["variant"]
        for r in sorted(records, key=lambda r: r["curves"]["eval/loss"][-1])
        if r["variant"] != "none"
    ]
    chosen = ["none", *ranked[:n]]
    best_ed = next((v for v in ranked if v.startswith("entrodrop")), None)
    if best_ed is not None and best_ed not in chosen:
        chosen.append(best_ed)
    return chosen


# ---------------------------------------------------------------- table and plots


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}


def summarise(records: list[dict[str, Any]], initial: dict[str, float]) -> list[dict[str, Any]]:
    """One row per variant: best/final held-out loss (overall, high-entropy), low, general."""
    rows = []
    for variant in VARIANTS:
        mine = [r for r in records if r["variant"] == variant.name]
        if not mine:
            continue
        row: dict[str, Any] = {"variant": variant.name, "seeds": len(mine)}
        for name, short in (("eval/loss", "heldout"), ("eval/loss_high_entropy", "high")):
            best = [min(r["curves"][name]) for r in mine]
            final = [r["curves"][name][-1] for r in mine]
            row[f"best_{short}"] = spread(best)
            row[f"final_{short}"] = spread(final)
            row[f"best_{short}_epoch"] = [
                1 + r["curves"][name].index(min(r["curves"][name])) for r in mine
            ]
        for name, short in (("eval/loss_low_entropy", "low"), ("general/loss", "general")):
            row[f"final_{short}"] = spread([r["curves"][name][-1] for r in mine])
        row["rebound_high"] = spread(
            [
                r["curves"]["eval/loss_high_entropy"][-1]
                - min(r["curves"]["eval/loss_high_entropy"])
                for r in mine
            ]
        )
        rows.append(row)
    return rows


def fmt(s: dict[str, float]) -> str:
    if s["max"] == s["min"]:
        return f"{s['mean']:.3f}"
    return f"{s['mean']:.3f}±{(s['max'] - s['min']) / 2:.3f}"


def print_summary(rows: list[dict[str, Any]], initial: dict[str, float]) -> None:
    print(
        f"\nstarting model: held-out {initial['eval/loss']:.3f}, high-entropy "
        f"{initial['eval/loss_high_entropy']:.3f}, general {initial['general/loss']:.3f}"
    )
    table = [
        {
            "variant": r["variant"],
            "seeds": r["seeds"],
            "best_heldout": fmt(r["best_heldout"]),
            "final_heldout": fmt(r["final_heldout"]),
            "best_high": fmt(r["best_high"]),
            "final_high": fmt(r["final_high"]),
            "rebound_high": fmt(r["rebound_high"]),
            "final_low": fmt(r["final_low"]),
            "final_general": fmt(r["final_general"]),
        }
        for r in sorted(rows, key=lambda r: r["final_heldout"]["mean"])
    ]
    print_table(table, list(table[0]))


def mean_curve(
    records: list[dict[str, Any]], name: str, initial: dict[str, float]
) -> list[list[float]]:
    """Per seed, [epoch-0 value, epoch-1 value, ...]."""
    return [[initial[name], *r["curves"][name]] for r in records]


def plot(
    records: list[dict[str, Any]], initial: dict[str, float], names: tuple[str, ...], path: Path
) -> None:
    """Loss per epoch per variant (mean over seeds, band = min..max), one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(2, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 4.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=True):
        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors[: len(VARIANTS)])
        for variant in VARIANTS:
            curves = mean_curve([r for r in records if r["variant"] == variant.name], name, initial)
            if not curves:
                continue
            epochs = list(range(len(curves[0])))
            mean = [sum(c[i] for c in curves) / len(curves) for i in epochs]
            style = {"entrodrop": "-", "random": "-."}.get(variant.method, "--")
            (line,) = ax.plot(
                epochs, mean, style, marker="o", ms=3, label=f"{variant.name} (n={len(curves)})"
            )
            if len(curves) > 1:
                lo = [min(c[i] for c in curves) for i in epochs]
                hi = [max(c[i] for c in curves) for i in epochs]
                ax.fill_between(epochs, lo, hi, color=line.get_color(), alpha=0.15)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{name} (nats/token)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-tokens", type=int, default=2048, help="training slice (tokens)")
    p.add_argument("--eval-tokens", type=int, default=1024, help="held-out and general tokens")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument(
        "--leaders", type=int, default=3, help="best variants (besides none) run with seed 1"
    )
    p.add_argument(
        "--report-only", action="store_true", help="no training: tables from what exists"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    initial = initial_eval(args)
    if not args.report_only:
        run_all([(v, 0) for v in VARIANTS] + [(VARIANTS[0], 1)], args)  # none: seed 1 too
    first = [r for v in VARIANTS if (r := run_record(v, 0, args)) is not None]
    second_names = leaders(first, args.leaders) if len(first) == len(VARIANTS) else []
    second = [v for v in VARIANTS if v.name in second_names]
    if not args.report_only:
        run_all([(v, 1) for v in second], args)
    records = first + [r for v in second if (r := run_record(v, 1, args)) is not None]
    if not records:
        print("no finished runs yet")
        return 1
    rows = summarise(records, initial)
    print_summary(rows, initial)
    plot(records, initial, ("eval/loss_high_entropy",), PLOT)
    plot(records, initial, CURVES, PLOT_ALL)
    write_result(
        "reproduction",
        {
            "command": " ".join(
                [
                    "python bench/reproduce.py",
                    *(a for a in argv or sys.argv[1:] if a != "--report-only"),
                ]
            ),
            "settings": {k: v for k, v in vars(args).items() if k != "report_only"},
            "steps_per_epoch": args.train_tokens // (args.seq_len * args.batch_size),
            "initial": initial,
            "seed1_variants": second_names,
            "complete": len(first) == len(VARIANTS) and len(records) == len(first) + len(second),
            "table": rows,
            "runs": records,
            "this_invocation_wall_s": time.time() - t0,
            "runs_wall_s_total": sum(r["wall_s"] or 0.0 for r in records),
            "eval_tokens_per_evaluation": 2 * args.eval_tokens,  # held-out + general
            "eval_over_step_median": statistics.median(
                r["timing"]["eval_s"] / r["timing"]["step_s"] for r in records
            ),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
