"""Downstream evaluation of a loaded model through lm-evaluation-harness (`simple_evaluate`).

The model is the one the product already loaded (`entrodrop.load`: default, a folder, a hub id,
`run:<id>`, an adapter run), wrapped in lm-eval's `HFLM` without a second load, in the
precision the hardware does natively (bf16 autocast where it is native, as for scoring).
Offline by default: without a reachable hub, the Hugging Face libraries are switched offline
first, so a task that needs a download fails within seconds instead of retrying.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entrodrop.eval.tasks import (
    OFFLINE,
    OFFLINE_TASKS,
    PPL_PREFIX,
    TaskError,
    check_code_execution,
    check_known,
    write_offline_tasks,
)
from entrodrop.models import LoadedModel, context_length
from entrodrop.network import go_offline, hub_reachable

log = logging.getLogger(__name__)

INSTALL_HINT = "lm-evaluation-harness is not installed: pip install 'lm-eval>=0.4.13'"
OFFLINE_HINT = (
    "needs its dataset from the Hugging Face hub, and this machine has no network (or "
    "HF_HUB_OFFLINE is set); the offline tasks work here: --tasks offline"
)


class EvalError(RuntimeError):
    """An evaluation that cannot run or failed, with a message meant for a person."""


@dataclass
class EvalRequest:
    """What to evaluate: task names (or the `offline` group, or ppl:FILE), and how."""

    tasks: Sequence[str]
    limit: int | None = None
    num_fewshot: int | None = None
    include_path: Path | None = None
    allow_code_execution: bool = False
    batch_size: int = 4
    # Tokens per window. Rolling perplexity windows hold logits of window x vocabulary floats per
    # row: the default model's full context (8,192) ran out of 24 GB; 2,048 x 8 rows peaked at
    # 7.5 GB; 1,024 x 4 stays near 2 GB.
    max_length: int = 1024
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # more simple_evaluate keywords

    def check(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise TaskError("--limit must be at least 1 (leave it out for every example)")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise TaskError("--num-fewshot must be 0 or more")
        if self.max_length < 16:
            raise TaskError("--max-length must be at least 16 tokens")
        if self.include_path is not None and not self.include_path.is_dir():
            raise TaskError(f"--include-path {self.include_path}: no such folder")


def _lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError as exc:
        raise EvalError(INSTALL_HINT) from exc
    return lm_eval


def _task_manager(request: EvalRequest, folder: Path) -> Any:
    """lm-eval's TaskManager over its own tasks, ours (written into `folder`) and the user's."""
    from lm_eval.tasks import TaskManager

    write_offline_tasks(folder, [t for t in request.tasks if t.startswith(PPL_PREFIX)])
    paths = [str(folder)] + ([str(request.include_path)] if request.include_path else [])
    return TaskManager(include_path=paths)


def _names(request: EvalRequest) -> list[str]:
    """The task names lm-eval gets: ppl:FILE becomes the name its YAML was written under."""
    from entrodrop.eval.tasks import _ppl_texts

    return [_ppl_texts(t)[0] if t.startswith(PPL_PREFIX) else t for t in request.tasks]


def evaluate(loaded: LoadedModel, request: EvalRequest) -> dict[str, Any]:
    """Run the tasks on the loaded model: `{"results": {task: {metric: x, metric_stderr: y}},
    "model", "seconds", "limit", "num_fewshot", "offline"}`; EvalError or TaskError on failure."""
    request.check()
    offline = not hub_reachable()
    if offline:
        go_offline()  # before lm_eval imports `datasets`, which reads the switch once
    lm_eval = _lm_eval()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="entrodrop-eval-") as tmp:
        manager = _task_manager(request, Path(tmp))
        names = _names(request)
        check_known(names, [*manager.all_tasks, OFFLINE])
        check_code_execution(names, request.allow_code_execution)
        raw = _simple_evaluate(lm_eval, loaded, manager, names, request, offline)
    return {
        "model": loaded.name,
        "tasks": list(request.tasks),
        "results": tidy_results(raw.get("results", {})),
        "seconds": time.perf_counter() - t0,
        "limit": request.limit,
        "num_fewshot": request.num_fewshot,
        "offline": offline,
        "precision": loaded.precision.name,
    }


def _simple_evaluate(
    lm_eval: Any,
    loaded: LoadedModel,
    manager: Any,
    names: list[str],
    request: EvalRequest,
    offline: bool,
) -> dict[str, Any]:
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(
        pretrained=loaded.model,
        tokenizer=loaded.tokenizer,
        batch_size=request.batch_size,
        max_length=min(request.max_length, context_length(loaded.model) or request.max_length),
        mixed_precision_dtype=loaded.precision.autocast_dtype,
    )
    if request.allow_code_execution:
        os.environ["HF_ALLOW_CODE_EVAL"] = "1"  # the `evaluate` library's own switch
    try:
        raw = lm_eval.simple_evaluate(
            model=lm, tasks=names, num_fewshot=request.num_fewshot, limit=request.limit,
            task_manager=manager, log_samples=False, random_seed=request.seed,
            numpy_random_seed=request.seed, torch_random_seed=request.seed,
            fewshot_random_seed=request.seed,
            confirm_run_unsafe_code=request.allow_code_execution, **request.extra,
        )  # fmt: skip
    except Exception as exc:  # lm-eval and datasets raise many types; say which task and why
        raise EvalError(_explain(exc, names, offline)) from exc
    if raw is None:  # lm-eval returns None on processes other than the main one
        return {}
    return dict(raw)


def _explain(exc: BaseException, names: Sequence[str], offline: bool) -> str:
    text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    hub_tasks = [
        n for n in names if n not in (OFFLINE, *OFFLINE_TASKS) and not n.startswith("ppl_")
    ]
    if offline and hub_tasks:
        return f"{', '.join(hub_tasks)}: {OFFLINE_HINT} ({text})"
    return f"evaluation failed: {text}"


def tidy_results(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """lm-eval's `{"acc,none": x, "acc_stderr,none": y, "alias": ...}` as `{"acc": x,
    "acc_stderr": y}` per task: numbers only, the default filter's name dropped."""
    out: dict[str, dict[str, float | None]] = {}
    for task, metrics in results.items():
        row: dict[str, float | None] = {}
        for key, value in metrics.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            name, _, filt = key.partition(",")
            name = "n" if name == "sample_len" else name
            name = name if filt in ("", "none") else f"{name}[{filt}]"
            row[name] = float(value) if math.isfinite(float(value)) else None
        if any(k != "n" for k in row):  # a group's own row is empty: its tasks have theirs
            out[task] = row
    return out
