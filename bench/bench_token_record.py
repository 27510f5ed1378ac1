"""The token record's cost: one evaluation with recording off vs on, side by side (medians).

What the trainer does at each evaluation, on the default model and the default held-out set
(2,048 tokens in blocks of 128): off, the diagnostics score the held-out and general-text
blocks and sum their losses; on (the default), the recorder then takes the probe's values and
rewrites the run folder's record (safetensors, atomically); on+ranks (record_ranks), the
held-out scoring also counts each true token's rank (one more pass over the logits). The kinds
take turns (the machine's noise hits all alike); the ratio to off of the medians is the cost, on
the wall clock and on the process's CPU clock (the steadier one on a shared machine). The record's rows accumulate over the turns as in
a run, past the 64-evaluation bound when --repeats is large. Run:
`.venv/bin/python bench/bench_token_record.py` (a few minutes on the shared 2-core CPU).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, median, print_table, write_result  # noqa: E402

BUDGET = 0.05  # the bound: recording costs at most 5% of an evaluation


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="model spec (default: the default model)")
    p.add_argument("--repeats", type=int, default=5, help="evaluations of each kind")
    p.add_argument(
        "--eval-tokens", type=int, default=2048, help="held-out tokens (max_eval_tokens)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--save", action="store_true", help="write bench/results/token_record-*.json")
    return p.parse_args(argv)


KINDS = ("off", "on", "on+ranks")  # recording off; on as by default; on with record_ranks


def set_up(args: argparse.Namespace, tmp: Path) -> tuple[Any, Any, dict[str, Any]]:
    """The model, its diagnostics and a recorder per kind, built as entrodrop.training.run does."""
    import torch

    from entrodrop.config import RunConfig
    from entrodrop.precision import choose_precision
    from entrodrop.runfolder import RunFolder
    from entrodrop.training.recording import RecordSources, build_recorder
    from entrodrop.training.run import load_model, load_run_data, reference_pass

    config = RunConfig(model=args.model, max_eval_tokens=args.eval_tokens, method="none")
    loaded = load_model(config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded.model.to(device)
    autocast = choose_precision(device, config.dtype).autocast_dtype
    data = load_run_data(config, loaded.tokenizer)
    prepared = reference_pass(config, loaded, data, autocast)
    recorders = {}
    for kind in KINDS[1:]:
        sources = RecordSources(loaded.model, prepared.model_fp, loaded.tokenizer, data.train, None)
        sources.ranks = kind == "on+ranks"
        folder = RunFolder(tmp / kind)
        recorders[kind] = build_recorder(folder, prepared.diagnostics, sources, 25, False)
    return loaded.model, prepared.diagnostics, recorders


def measure(
    model: Any, diag: Any, recorders: dict[str, Any], repeats: int
) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of each evaluation, the kinds taking turns; and of the recorder's own
    part (taking the values, writing the file) within the evaluations that record."""
    times: dict[str, dict[str, list[float]]] = {
        kind: {"wall": [], "cpu": []} for kind in (*KINDS, "recorder")
    }
    step = 0

    def clocked(kind: str, fn: Any) -> Any:
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        times[kind]["wall"].append(time.perf_counter() - w)
        times[kind]["cpu"].append(time.process_time() - c)
        return out

    def evaluate(kind: str) -> None:
        recorder = recorders.get(kind)  # what EntroDropTrainer.evaluate does
        scores = diag.score(model, ranked=() if recorder is None else recorder.ranked)
        diag.evaluate(model, scores=scores)
        if recorder is not None:
            clocked("recorder", lambda: recorder.add(step, scores, model))

    evaluate("off")  # warm-up: first-call allocations, caches
    for _ in range(repeats):
        step += 25
        for kind in KINDS:
            clocked(kind, lambda kind=kind: evaluate(kind))
    return times


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model, diag, recorders = set_up(args, Path(tmp))
        times = measure(model, diag, recorders, args.repeats)
        size = (Path(tmp) / "on" / "tokens.safetensors").stat().st_size
    rows = []
    for clock in ("wall", "cpu"):
        off = median(times["off"][clock])
        row = {"clock": clock, "off_s": off, "recorder_s": median(times["recorder"][clock])}
        for kind in KINDS[1:]:
            row[f"{kind}_s"] = median(times[kind][clock])
            row[f"{kind}_ratio"] = row[f"{kind}_s"] / off
        rows.append(row)
    facts = machine()
    record = recorders["on"].record
    print(f"machine: {facts['class']} ({facts['cpu']}), {facts['torch_threads']} torch threads")
    print(f"{record.probe.n} probe tokens, {record.n_rows} rows, file {size} B")
    print_table(rows, ["clock", "off_s", "on_s", "on_ratio", "on+ranks_s", "on+ranks_ratio"])
    for kind in KINDS[1:]:
        cost = max(r[f"{kind}_ratio"] for r in rows) - 1
        print(f"{kind}: recording costs {100 * cost:+.1f}% of an evaluation (bound {BUDGET:.0%})")
    if args.save:
        write_result(
            "token_record",
            {"args": vars(args), "rows": rows, "times": times, "probe_tokens": record.probe.n,
             "file_bytes": size},
        )  # fmt: skip


if __name__ == "__main__":
    main()
