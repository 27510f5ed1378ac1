"""ONNX Runtime against torch for scoring on this CPU: fp32, and 8-bit block-quantised weights.

    .venv/bin/pip install onnxruntime onnxscript onnx      # optional: not a project dependency
    .venv/bin/python bench/bench_onnx.py [--tokens 1000] [--repeats 3] [--threads 1]

Exports the default model's logits to ONNX once (torch.onnx, dynamo exporter; a few minutes, ~540
MB under bench/results/tmp/onnx/), quantises its decoder MatMuls to 8-bit weights in blocks of 32
with int8 compute (ONNX Runtime's MatMulNBits, accuracy level 4: activations quantised per block,
the scheme meant for outlier channels; the LM head stays fp32), then times the same tokens through
the torch fp32 forward, ORT fp32 and ORT 8-bit, interleaved, and reports the median tokens/s, the
ratio to torch and the mean absolute entropy error against torch fp32 (float64 softmax).
Writes bench/results/onnx-<cpu class>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, machine, machine_class  # noqa: E402

WORK = RESULTS / "tmp" / "onnx"
FP32 = WORK / "logits.onnx"
Q8 = WORK / "logits_q8.onnx"


class Logits(torch.nn.Module):
    """The causal LM's logits for input ids: the one output scoring needs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, use_cache=False).logits


def export(model: torch.nn.Module) -> None:
    """fp32 ONNX of the logits with a dynamic sequence length (the dynamo exporter: the
    TorchScript one stops at transformers' mask code, `aten::diff`)."""
    WORK.mkdir(parents=True, exist_ok=True)
    seq = torch.export.Dim("seq", min=2, max=4096)
    torch.onnx.export(
        Logits(model), (torch.randint(0, 1000, (1, 64)),), str(FP32), dynamo=True,
        input_names=["input_ids"], output_names=["logits"],
        dynamic_shapes={"input_ids": {1: seq}},
    )  # fmt: skip


def quantise() -> None:
    """8-bit weights in blocks of 32, int8 compute; the last MatMul (the LM head) stays fp32."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    proto = onnx.load(str(FP32))
    head = [n.name for n in proto.graph.node if n.op_type in ("MatMul", "Gemm")][-1]
    kw: dict[str, Any] = {"block_size": 32, "is_symmetric": True, "accuracy_level": 4, "bits": 8}
    quantiser = MatMulNBitsQuantizer(
        proto, **kw, nodes_to_exclude=[head], algo_config=DefaultWeightOnlyQuantConfig(**kw)
    )
    quantiser.process()
    quantiser.model.save_model_to_file(str(Q8), use_external_data_format=True)


def session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def entropy(logits: Any) -> torch.Tensor:
    logp = torch.log_softmax(torch.as_tensor(logits).double()[0], -1)
    return -(logp.exp() * logp).sum(-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="for torch and ORT alike")
    args = p.parse_args()
    import pydoc_data.topics

    import entrodrop

    torch.set_num_threads(args.threads)
    lm = entrodrop.load("default", device="cpu", dtype="float32")
    if not FP32.is_file():
        export(lm.model.eval())
    if not Q8.is_file():
        quantise()
    text = "\n\n".join(list(pydoc_data.topics.topics.values())[:6])
    ids = torch.tensor([lm.tokenizer(text)["input_ids"][: args.tokens]])

    def torch_fp32() -> Any:
        with torch.inference_mode():
            return lm.model(input_ids=ids, use_cache=False).logits.numpy()

    def ort_run(path: Path) -> Callable[[], Any]:
        sess = session(path, args.threads)
        return lambda: sess.run(["logits"], {"input_ids": ids.numpy()})[0]

    runs = {"torch fp32": torch_fp32, "ORT fp32": ort_run(FP32), "ORT 8-bit weights": ort_run(Q8)}
    reference = entropy(torch_fp32())
    mae = {k: float((entropy(f()) - reference).abs().mean()) for k, f in runs.items()}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):  # interleaved: the machine's load hits every candidate alike
        for name, f in runs.items():
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["torch fp32"])
    rows = [
        {"candidate": k, "tok_s": ids.shape[1] / statistics.median(t),
         "vs_torch": base / statistics.median(t), "entropy_mae": mae[k], "seconds": t}
        for k, t in times.items()
    ]  # fmt: skip
    for r in rows:
        print(f"{r['candidate']:20s} {r['tok_s']:7.1f} tok/s  {r['vs_torch']:.2f}x  "
              f"MAE {r['entropy_mae']:.4f}")  # fmt: skip
    out = RESULTS / f"onnx-{machine_class()}.json"
    out.write_text(json.dumps({"machine": machine(), "args": vars(args), "rows": rows}, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
