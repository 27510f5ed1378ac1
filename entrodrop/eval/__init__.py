"""Downstream benchmarks through lm-evaluation-harness: offline tasks bundled, the paper's suite by name."""

from __future__ import annotations

from typing import Any

from entrodrop.eval.tasks import (
    CODE_TASKS,
    OFFLINE,
    OFFLINE_TASKS,
    PAPER_SUITE,
    TaskError,
    split_tasks,
)

_HARNESS = ("EvalError", "EvalRequest", "evaluate", "tidy_results")


def __getattr__(name: str) -> Any:
    # The harness imports torch and the models: loaded on first use, so `entrodrop --help` and
    # the command-line parser stay quick.
    if name in _HARNESS:
        from entrodrop.eval import harness

        return getattr(harness, name)
    raise AttributeError(f"module 'entrodrop.eval' has no attribute {name!r}")


__all__ = [
    "CODE_TASKS",
    "OFFLINE",
    "OFFLINE_TASKS",
    "PAPER_SUITE",
    "EvalError",
    "EvalRequest",
    "TaskError",
    "evaluate",
    "split_tasks",
    "tidy_results",
]
