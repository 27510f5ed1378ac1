"""Scoring throughput and memory: a naive Hugging Face script vs entrodrop.score, side by side.

Naive = what a user would write: fp32, one text at a time, full logits, full log_softmax over the
vocabulary, then entropy / surprisal / rank / top-k from the full tensors. Ours = entrodrop.score
with its defaults (bf16 autocast on CPU, hidden states through the LM head a chunk at a time).
Also measures this machine's matmul rate at the model's own shapes and dtype, and reports the
fraction of it the scorer reaches. Memory is measured in fresh child processes (peak RSS over the
model's weights). Run: `.venv/bin/python bench/bench_scoring.py [--repeats 3] [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved, median, print_table, write_result  # noqa: E402


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


def texts_of(tokenizer: Any, lengths: list[int]) -> dict[int, list[int]]:
    from entrodrop.data import python_reference

    stream = tokenizer("\n".join(python_reference().train))["input_ids"]
    return {n: stream[:n] for n in lengths}


def matmul_rate(loaded: Any, tokens: int, autocast: bool, repeats: int = 3) -> dict[str, float]:
    """FLOP/s of torch matmuls at the model's linear shapes for `tokens` rows, in the scorer's dtype.

    One 'forward' of matmuls = every linear layer of the decoder plus the LM head, so the rate is
    measured at exactly the shapes the scorer multiplies.
    """
    cfg = loaded.model.config
    h, inter, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    kv = cfg.num_key_value_heads * (h // cfg.num_attention_heads)
    shapes = [
        (h, h),
        (h, kv),
        (h, kv),
        (h, h),
        (h, inter),
        (h, inter),
        (inter, h),
    ] * cfg.num_hidden_layers
    shapes.append((h, v))
    weights = [torch.randn(k, n) for k, n in shapes]
    x_h, x_i = torch.randn(tokens, h), torch.randn(tokens, inter)
    flops = sum(2 * tokens * k * n for k, n in shapes)

    def run() -> None:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.no_grad()
        with torch.inference_mode(), ctx:
            for w in weights:
                (x_i if w.shape[0] == inter else x_h) @ w

    run()  # warm-up
    t = median(interleaved({"mm": run}, repeats)["mm"])
    return {"flops_per_forward": flops, "seconds": t, "flop_per_s": flops / t}


def model_flops(loaded: Any, tokens: int, window: int) -> float:
    """Matmul FLOPs of scoring `tokens` tokens: linear layers + head, plus attention scores."""
    cfg = loaded.model.config
    h, layers = cfg.hidden_size, cfg.num_hidden_layers
    linear = sum(
        p.numel() for n, p in loaded.model.named_parameters() if p.dim() == 2 and "embed" not in n
    )
    linear += cfg.vocab_size * h  # tied LM head
    ctx = min(tokens, window)
    attention = 2 * 2 * layers * h * ctx / 2  # QK^T and AV, causal: half the square on average
    return tokens * (2 * linear + attention)


def measure_throughput(repeats: int, lengths: list[int]) -> list[dict[str, Any]]:
    import entrodrop
    from entrodrop.scoring import DEFAULT_MAX_WINDOW

    ours = entrodrop.load("default")
    naive_model = ours.model  # same fp32 weights; the naive path simply runs without autocast
    rows = []
    for n, ids in texts_of(ours.tokenizer, lengths).items():
        text_ids = [ids]
        fns = {
            "naive": lambda ids=ids: naive_score(naive_model, ids),
            "entrodrop": lambda text_ids=text_ids: entrodrop.scoring.score_ids(
                ours, text_ids, top_k=5
            ),
        }
        for fn in fns.values():
            fn()  # warm-up
        times = interleaved(fns, repeats)
        t_naive, t_ours = median(times["naive"]), median(times["entrodrop"])
        mm = matmul_rate(ours, min(n, DEFAULT_MAX_WINDOW), autocast=True)
        achieved = model_flops(ours, n, DEFAULT_MAX_WINDOW) / t_ours
        rows.append(
            {
                "tokens": n,
                "naive_tok_s": n / t_naive,
                "entrodrop_tok_s": n / t_ours,
                "speedup": t_naive / t_ours,
                "naive_s": times["naive"],
                "entrodrop_s": times["entrodrop"],
                "matmul_gflop_s": mm["flop_per_s"] / 1e9,
                "achieved_gflop_s": achieved / 1e9,
                "fraction_of_matmul": achieved / mm["flop_per_s"],
            }
        )
    return rows


CHILD = r"""
import json, sys, torch
sys.path.insert(0, {root!r})
import entrodrop
from bench.bench_scoring import naive_score, texts_of

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
loaded = entrodrop.load("default")
ids = texts_of(loaded.tokenizer, [{n}])[{n}]
base = rss("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
if {mode!r} == "naive":
    naive_score(loaded.model, ids)
else:
    entrodrop.scoring.score_ids(loaded, [ids], top_k=5)
print(json.dumps({{"base": base, "peak": rss("VmHWM:")}}))
"""


def measure_memory(n: int) -> dict[str, Any]:
    root = str(Path(__file__).resolve().parent.parent)
    out: dict[str, Any] = {"tokens": n}
    for mode in ("naive", "entrodrop"):
        code = CHILD.format(root=root, n=n, mode=mode)
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        facts = json.loads(proc.stdout.strip().splitlines()[-1])
        out[f"{mode}_added_mb"] = (facts["peak"] - facts["base"]) / 2**20
        out[f"{mode}_base_mb"] = facts["base"] / 2**20
    out["ratio"] = out["entrodrop_added_mb"] / out["naive_added_mb"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="256 tokens only, no memory run")
    args = parser.parse_args()
    lengths = [256] if args.quick else [256, 4096]
    rows = measure_throughput(args.repeats, lengths)
    print_table(
        rows,
        [
            "tokens",
            "naive_tok_s",
            "entrodrop_tok_s",
            "speedup",
            "matmul_gflop_s",
            "achieved_gflop_s",
            "fraction_of_matmul",
        ],
    )
    memory = None if args.quick else measure_memory(8192)
    if memory:
        print_table([memory], ["tokens", "naive_added_mb", "entrodrop_added_mb", "ratio"])
    write_result("scoring", {"throughput": rows, "memory": memory, "repeats": args.repeats})


if __name__ == "__main__":
    main()
