"""The GPU check (issue 14): scoring speed and short full-weight, LoRA, DDP and FSDP EntroDrop runs
on a randomly initialised model of the default model's shape, written to bench/results/.

The GGUF default model does not travel to a GPU machine, so the model is SmolLM2-135M's
architecture built in code (random weights: speed and memory are what is measured, not quality)
with a small byte-level BPE tokenizer trained on the Python docs. `bash bench/gpu_check.sh` runs
this after the CUDA tests; `--cpu-dry-run` runs the same steps on the CPU with a tiny model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import machine  # noqa: E402

# SmolLM2-135M's architecture (its config.json): a Llama with tied embeddings.
SMOLLM2_135M: dict[str, Any] = {
    "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
    "rope_theta": 100000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
}  # fmt: skip
TINY: dict[str, Any] = {
    **SMOLLM2_135M, "vocab_size": 4096, "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
}  # fmt: skip


def build_model(out: Path, shape: dict[str, Any]) -> Path:
    """A random Llama of `shape` and a BPE tokenizer (4,096 tokens) saved as a model folder."""
    import pydoc_data.topics

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        list(pydoc_data.topics.topics.values()),
        trainers.BpeTrainer(
            vocab_size=4096,
            special_tokens=["<unk>", "<pad>", "<eos>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        **shape, pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id, bos_token_id=None
    )
    LlamaForCausalLM(config).save_pretrained(str(out), safe_serialization=True)
    fast.save_pretrained(str(out))
    return out


def step(results: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one check, recording its result or its error (a failed check does not stop the rest)."""
    print(f"== {name}", flush=True)
    t0 = time.time()
    try:
        results[name] = {"ok": True, **fn()}
    except Exception as exc:  # the report says what failed; the other checks still run
        traceback.print_exc()
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    results[name]["wall_s"] = round(time.time() - t0, 2)
    print(json.dumps(results[name], default=str)[:600], flush=True)


def peak_memory_gib() -> float | None:
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def scoring_benchmark(model_dir: Path, device: str, texts: int, tokens: int) -> dict[str, Any]:
    """entrodrop.score throughput on `texts` texts of about `tokens` tokens each (after a warm-up)."""
    import entrodrop
    from entrodrop.data import load_dataset

    loaded = entrodrop.load(str(model_dir), device=device)
    corpus = " ".join(load_dataset("python-reference").train)
    ids = loaded.tokenizer(corpus)["input_ids"]
    batch = [loaded.tokenizer.decode(ids[i * tokens : (i + 1) * tokens]) for i in range(texts)]
    entrodrop.score(loaded, batch[:1])  # warm-up: kernels, allocator
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    results = entrodrop.score(loaded, batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    n = sum(r.n_tokens for r in results)
    return {
        "device": str(loaded.device),
        "texts": texts,
        "tokens": n,
        "tokens_per_s": round(n / seconds, 1),
        "peak_gib": peak_memory_gib(),
        "weights": loaded.describe()["dtype"],
    }


def run_config(model_dir: Path, steps: int, seq_len: int, batch: int, **kw: Any) -> Any:
    from entrodrop.config import RunConfig

    return RunConfig(
        model=str(model_dir), dataset="python-reference", method="entrodrop", max_steps=steps,
        seq_len=seq_len, batch_size=batch, eval_every=max(1, steps // 2), learning_rate=3e-4,
        max_train_tokens=steps * batch * seq_len, max_eval_tokens=4 * seq_len, **kw,
    )  # fmt: skip


def training_run(config: Any, run_dir: Path) -> dict[str, Any]:
    """One in-process run; its summary, the peak GPU memory and what model/ holds."""
    from entrodrop.training.run import train

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    summary = train(config, run_dir)
    saved = sorted(p.name for p in (run_dir / "model").iterdir()) if summary["model_dir"] else []
    return {
        "status": summary["status"],
        "steps": summary["steps"],
        "step_time_s": summary["step_time_s"],
        "final_eval_loss": summary["final_eval_loss"],
        "peak_gib": peak_memory_gib(),
        "model_files": saved,
        "log_tail": (run_dir / "log.txt").read_text().splitlines()[-3:],
    }


def launched_run(config: Any, run_dir: Path, processes: int, fsdp: bool) -> dict[str, Any]:
    """A run under accelerate launch with the dashboard's own argv (DDP, or FSDP)."""
    from entrodrop.launch import Launcher, child_argv

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(config.model_dump_json())
    launcher = Launcher(kind="accelerate", num_processes=processes, fsdp=fsdp)
    argv = child_argv(run_dir, launcher, resume=False)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    summary = json.loads((run_dir / "summary.json").read_text()) if proc.returncode == 0 else {}
    return {
        "returncode": proc.returncode,
        "argv": argv[1:],
        "status": summary.get("status"),
        "steps": summary.get("steps"),
        "step_time_s": summary.get("step_time_s"),
        "output_tail": (proc.stdout + proc.stderr)[-1500:],
    }


def card_slug(name: str) -> str:
    """A file-name-safe card name: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="tiny model on the CPU")
    parser.add_argument(
        "--out", type=Path, help="result file (default bench/results/gpu-<card>.json)"
    )
    parser.add_argument("--tests", type=Path, help="a JSON file with the CUDA tests' outcome")
    ns = parser.parse_args()
    dry = ns.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        print("no CUDA device: use --cpu-dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    device = "cpu" if dry else "cuda"
    card = "cpu-dry-run" if dry else torch.cuda.get_device_name(0)
    steps, seq_len, batch = (2, 64, 2) if dry else (20, 512, 8)
    results: dict[str, Any] = {
        "card": card,
        "gpus": torch.cuda.device_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "model_shape": "tiny" if dry else "SmolLM2-135M (random weights)",
        "tests": json.loads(ns.tests.read_text()) if ns.tests and ns.tests.is_file() else None,
    }
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        home = Path(tmp)
        os.environ["ENTRODROP_HOME"] = str(home / "home")
        model_dir = build_model(home / "model", TINY if dry else SMOLLM2_135M)
        texts, tokens = (4, 64) if dry else (32, 1024)
        step(results, "scoring", lambda: scoring_benchmark(model_dir, device, texts, tokens))
        config = run_config(model_dir, steps, seq_len, batch)
        step(results, "full_weights", lambda: training_run(config, home / "full"))
        lora = run_config(model_dir, steps, seq_len, batch, adapter={"kind": "lora", "r": 16})
        step(results, "lora", lambda: training_run(lora, home / "lora"))
        if torch.cuda.device_count() >= 2 or dry:  # the dry run: 2 CPU processes on gloo
            step(results, "ddp_2", lambda: launched_run(config, home / "ddp", 2, fsdp=False))
        if torch.cuda.device_count() >= 2:
            step(results, "fsdp_2", lambda: launched_run(config, home / "fsdp", 2, fsdp=True))
        elif not dry:
            results["ddp_2"] = {"ok": None, "why": f"{torch.cuda.device_count()} GPU(s): not run"}
    results["machine"] = machine()
    results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = ns.out or REPO / "bench" / "results" / f"gpu-{card_slug(card)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    failed = [k for k, v in results.items() if isinstance(v, dict) and v.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
