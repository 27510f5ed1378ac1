"""Scoring candidates side by side against a naive Hugging Face fp32 script, on this machine.

Naive = what a user would write: fp32, full logits, full log_softmax over the vocabulary, then
entropy / surprisal / rank / top-k from the full tensors. Each candidate scores the same text
(~1,400 tokens of the Python reference) through `entrodrop.scoring.score_ids` with one thing
changed: precision (fp32, bf16 autocast), one full-context pass vs 1,024-token windows, the LM-head
chunk size, int8 dynamic quantisation of the decoder's linear layers, torch.compile of the decoder,
torch threads. Repetitions are interleaved (A, B, C, A, B, C...) and medians reported, with the
ratio to the naive script and the mean absolute entropy error against an fp32 reference (float64
softmax of the naive script's fp32 logits). Also times a 1,000-token text end to end through
`entrodrop.score` (the Inspect goal: <= 5 s). Machine facts and the load average go with the results,
in bench/results/scoring-<machine class>.json.

Run: `.venv/bin/python bench/bench_scoring.py [--repeats 3] [--tokens 1400] [--compile]
[--memory 8192]`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved, median, print_table, write_result  # noqa: E402

Scorer = Callable[[], torch.Tensor]  # () -> token-aligned entropies (T-1,) of the bench text


def naive_score(model: Any, ids: list[int], top_k: int = 5) -> dict[str, torch.Tensor]:
    """The straightforward script: fp32 forward, full log_softmax, stats from the full tensors."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(x).logits[0].float()  # (T, V) in fp32
        logp = torch.log_softmax(logits, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)[:-1]
        target = logp[:-1].gather(-1, x[0, 1:, None]).squeeze(-1)
        rank = (logp[:-1] > target[:, None]).sum(-1) + 1
        top = logp[:-1].topk(top_k, dim=-1)
    return {"entropy": entropy, "surprisal": -target, "rank": rank, "top": top.indices}


def bench_ids(tokenizer: Any, n: int) -> list[int]:
    """The first n tokens of a few Python reference topics (pydoc_data.topics), in a fixed order."""
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    text = "\n\n".join(topics[k] for k in sorted(topics))
    return list(tokenizer(text[: n * 8])["input_ids"][:n])


def fp32_reference(model: Any, ids: list[int]) -> torch.Tensor:
    """Entropies (T-1,) from fp32 logits with a float64 softmax: the error yardstick."""
    with torch.inference_mode():
        logp = model(torch.tensor([ids])).logits[0, :-1].double().log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def int8_decoder(loaded: Any) -> Any:
    """A copy whose decoder Linear layers are int8 dynamic-quantised; the LM head stays fp32."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model = copy.deepcopy(loaded.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notice for eager quantisation
        spec = {torch.nn.Linear: per_channel_dynamic_qconfig}
        model.model = quantize_dynamic(model.model, spec, dtype=torch.qint8)  # type: ignore[arg-type]
    return dataclasses.replace(loaded, model=model)


def compiled_decoder(loaded: Any) -> Any:
    """A copy whose decoder is torch.compile'd (needs a C++ compiler; first call compiles)."""
    model = copy.copy(loaded.model)
    model.model = torch.compile(loaded.model.model, dynamic=False)
    return dataclasses.replace(loaded, model=model)


def candidates(loaded: Any, ids: list[int], compile_too: bool) -> dict[str, Scorer]:
    """name -> () -> entropies, each a variation of the default scorer on the same text."""
    from entrodrop import scoring
    from entrodrop.precision import choose_precision

    cpu = torch.device("cpu")
    fp32 = dataclasses.replace(loaded, precision=choose_precision(cpu, "float32"))
    bf16 = dataclasses.replace(loaded, precision=choose_precision(cpu, "bfloat16"))
    int8 = int8_decoder(fp32)

    def ours(lm: Any, **kw: Any) -> Scorer:
        return lambda: scoring.score_ids(lm, [ids], top_k=5, **kw)[0].entropy[1:]

    def with_chunk(elements: int) -> Scorer:
        def run() -> torch.Tensor:
            with patched(scoring, "CHUNK_ELEMENTS", elements):
                return ours(fp32)()

        return run

    def fixed_threads(n: int) -> Scorer:
        def run() -> torch.Tensor:  # torch's own thread count, not the idle cores
            with threads(n), patched(scoring, "cpu_threads", contextlib.nullcontext):
                return ours(fp32)()

        return run

    found: dict[str, Scorer] = {
        "naive": lambda: naive_score(loaded.model, ids)["entropy"],
        "default": ours(loaded),
        "fp32_2_threads": fixed_threads(2),
        "fp32_1_thread": fixed_threads(1),
        "bf16_autocast": ours(bf16),
        "fp32_windows_1024": ours(fp32, max_window=scoring.DEFAULT_MAX_WINDOW),
        "fp32_chunk_8mb": with_chunk(1 << 21),
        "int8_decoder": ours(int8),
    }
    if compile_too:
        found["fp32_compiled"] = ours(compiled_decoder(fp32))
    return found


def measure_candidates(repeats: int, n_tokens: int, compile_too: bool) -> list[dict[str, Any]]:
    import entrodrop

    loaded = entrodrop.load("default")
    ids = bench_ids(loaded.tokenizer, n_tokens)
    reference = fp32_reference(loaded.model, ids)
    fns = candidates(loaded, ids, compile_too)
    errors, first = {}, {}
    for name, fn in fns.items():  # warm-up (and compile), and each candidate's error
        t0 = time.perf_counter()
        ent = fn()
        first[name] = time.perf_counter() - t0
        errors[name] = float((ent.double() - reference).abs().mean())
    times = interleaved(fns, repeats)
    t_naive = median(times["naive"])
    return [
        {
            "candidate": name,
            "tokens": len(ids),
            "tok_s": len(ids) / median(ts),
            "vs_naive": t_naive / median(ts),
            "entropy_mae": errors[name],
            "median_s": median(ts),
            "first_call_s": first[name],
            "seconds": ts,
        }
        for name, ts in times.items()
    ]


def measure_end_to_end(repeats: int, n_tokens: int = 1000) -> dict[str, Any]:
    """A ~1,000-token text through entrodrop.score with its defaults (load excluded)."""
    import entrodrop

    t0 = time.perf_counter()
    loaded = entrodrop.load("default")
    load_s = time.perf_counter() - t0
    text = loaded.tokenizer.decode(bench_ids(loaded.tokenizer, n_tokens))
    entrodrop.score(loaded, text)  # warm-up
    times = interleaved({"score": lambda: entrodrop.score(loaded, text).to_dict()}, repeats)
    n = entrodrop.score(loaded, text).n_tokens
    return {
        "tokens": n,
        "precision": loaded.precision.reason,
        "load_s": load_s,
        "median_s": median(times["score"]),
        "seconds": times["score"],
    }


CHILD = r"""
import json, sys
sys.path.insert(0, {root!r})
import entrodrop
from bench.bench_scoring import bench_ids, naive_score

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
loaded = entrodrop.load("default")
ids = bench_ids(loaded.tokenizer, {n})
base = rss("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
if {mode!r} == "naive":
    naive_score(loaded.model, ids)
else:
    entrodrop.scoring.score_ids(loaded, [ids], top_k=5)
print(json.dumps({{"base": base, "peak": rss("VmHWM:")}}))
"""


def measure_memory(n: int) -> dict[str, Any]:
    """Peak memory added over the weights, naive vs entrodrop, each in a fresh child process."""
    import json
    import subprocess

    root = str(Path(__file__).resolve().parent.parent)
    out: dict[str, Any] = {"tokens": n}
    for mode in ("naive", "entrodrop"):
        code = CHILD.format(root=root, n=n, mode=mode)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        facts = json.loads(proc.stdout.strip().splitlines()[-1])
        out[f"{mode}_added_mb"] = (facts["peak"] - facts["base"]) / 2**20
    out["ratio"] = out["entrodrop_added_mb"] / out["naive_added_mb"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=1400)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (slow start)")
    parser.add_argument("--memory", type=int, default=0, help="also peak memory at N tokens")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = measure_candidates(args.repeats, args.tokens, args.compile)
    load_mid = os.getloadavg()
    print_table(rows, ["candidate", "tokens", "tok_s", "vs_naive", "entropy_mae", "first_call_s"])
    write_result("scoring", {"candidates": rows, "repeats": args.repeats})  # kept if stopped later
    e2e = measure_end_to_end(args.repeats)
    print(f"end to end: {e2e['tokens']} tokens in {e2e['median_s']:.2f} s ({e2e['precision']})")
    memory = measure_memory(args.memory) if args.memory else None
    if memory:
        print_table([memory], ["tokens", "naive_added_mb", "entrodrop_added_mb", "ratio"])
    payload = {
        "candidates": rows,
        "memory": memory,
        "end_to_end": e2e,
        "repeats": args.repeats,
        "loadavg": {"before": load_before, "after_candidates": load_mid, "end": os.getloadavg()},
    }
    write_result("scoring", payload)


if __name__ == "__main__":
    main()
