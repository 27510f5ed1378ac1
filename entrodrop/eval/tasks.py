"""The evaluation tasks: the bundled offline ones (lm-eval task YAML written at run time), the
paper's suite, perplexity over a local text, and task-name checks with near matches."""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from entrodrop.eval.docs_mc import DATA as DOCS_MC_DATA

OFFLINE = "offline"  # the lm-eval group of the bundled tasks: `entrodrop eval --tasks offline`
DOCS_MC = "python_docs_mc"
REFERENCE_PPL = "python_reference_ppl"
OFFLINE_TASKS = (DOCS_MC, REFERENCE_PPL)
# What the paper reports (arXiv 2512.23422): lm-eval task names, for users with network.
PAPER_SUITE = ("mmlu", "arc_challenge", "piqa", "hellaswag", "ifeval", "humaneval", "mbpp")
# Tasks that execute generated code: only with --allow-code-execution (lm-eval's own rule).
CODE_TASKS = ("humaneval", "mbpp")
PPL_PREFIX = "ppl:"  # ppl:FILE: perplexity over a local text file (or a built-in corpus)

DOCS_MC_PROMPT = (
    "Docstring: {{docstring}}\nQuestion: Which Python function does this docstring document?\n"
    "Answer:"
)


class TaskError(ValueError):
    """A task list that cannot run, with a message meant for a person."""


def _yaml(data: dict[str, Any]) -> str:
    # JSON is valid YAML: no YAML library is needed to write lm-eval's task files.
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _json_dataset(path: Path, cache: Path) -> dict[str, Any]:
    return {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(path)}, "cache_dir": str(cache)},
        "test_split": "test",
    }


def docs_mc_task(cache: Path) -> dict[str, Any]:
    """Which function does this docstring document? Four choices, chance 25% (docs_mc.py)."""
    return {
        "task": DOCS_MC,
        **_json_dataset(DOCS_MC_DATA, cache),
        "output_type": "multiple_choice",
        "doc_to_text": DOCS_MC_PROMPT,
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "label",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }


def perplexity_task(name: str, texts: Sequence[str], folder: Path, cache: Path) -> dict[str, Any]:
    """Rolling log-likelihood over whole documents: word and byte perplexity, bits per byte."""
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), "utf-8")
    return {
        "task": name,
        **_json_dataset(data, cache),
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "{{text}}",
        "metric_list": [
            {"metric": m} for m in ("word_perplexity", "byte_perplexity", "bits_per_byte")
        ],
        "metadata": {"version": 1.0},
    }


def reference_heldout_texts() -> list[str]:
    """The held-out topics of the built-in corpus: the domain a default run trains on."""
    from entrodrop.data import python_reference

    return python_reference().heldout


def write_offline_tasks(folder: Path, extra_ppl: Sequence[str] = ()) -> dict[str, str]:
    """Write the offline tasks (and any ppl:FILE tasks) as lm-eval YAML under `folder`;
    returns task name -> its source, for the results' notes."""
    folder.mkdir(parents=True, exist_ok=True)
    cache = folder / "datasets"
    tasks = [
        docs_mc_task(cache),
        perplexity_task(REFERENCE_PPL, reference_heldout_texts(), folder, cache),
    ]
    sources = {DOCS_MC: "bundled docstring questions", REFERENCE_PPL: "python-reference held-out"}
    for spec in extra_ppl:
        name, texts = _ppl_texts(spec)
        tasks.append(perplexity_task(name, texts, folder, cache))
        sources[name] = spec[len(PPL_PREFIX) :]
    for task in tasks:
        (folder / f"{task['task']}.yaml").write_text(_yaml(task), "utf-8")
    group = {"group": OFFLINE, "task": list(OFFLINE_TASKS), "metadata": {"version": 1.0}}
    (folder / f"{OFFLINE}.yaml").write_text(_yaml(group), "utf-8")
    return sources


def _ppl_texts(spec: str) -> tuple[str, list[str]]:
    """ppl:FILE (or ppl:<built-in corpus>): a task name and the documents to score."""
    from entrodrop.data import DataError, all_texts

    target = spec[len(PPL_PREFIX) :].strip()
    if not target:
        raise TaskError("ppl: needs a text file or corpus name, e.g. ppl:notes.txt")
    try:
        texts = all_texts(target)
    except DataError as exc:
        raise TaskError(f"{spec}: {exc}") from exc
    stem = Path(target).stem or target
    name = "ppl_" + "".join(c if c.isalnum() else "_" for c in stem).strip("_")
    return name, texts


def split_tasks(spec: str) -> list[str]:
    """`offline`, `T1,T2` or a mix: the task names, in order, without repeats."""
    names = [t.strip() for t in spec.split(",") if t.strip()]
    if not names:
        raise TaskError("no task given: use --tasks offline, or lm-eval task names like piqa")
    return list(dict.fromkeys(names))


def check_known(names: Sequence[str], known: Sequence[str]) -> None:
    """TaskError naming every unknown task with its near matches."""
    have = set(known)
    problems = []
    for name in names:
        if name in have or name.startswith(PPL_PREFIX):
            continue
        near = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        problems.append(f"unknown task {name!r}{hint}")
    if problems:
        raise TaskError("; ".join(problems) + "; `entrodrop eval --list` shows every task")


def check_code_execution(names: Sequence[str], allowed: bool) -> None:
    """Tasks that run generated code need the explicit flag, as lm-eval itself requires."""
    risky = [n for n in names if any(n == c or n.startswith(c + "_") for c in CODE_TASKS)]
    if risky and not allowed:
        raise TaskError(
            f"{', '.join(risky)} execute(s) code the model writes: allow it to run them "
            "(--allow-code-execution, or eval_allow_code_execution in a run config), only on a "
            "machine where that is safe"
        )


@functools.lru_cache(maxsize=1)
def lm_eval_tasks() -> tuple[str, ...]:
    """Every task and group name lm-eval knows (indexing its task folders takes a few seconds:
    done once per process). TaskError when lm-eval is not installed."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        raise TaskError("lm-evaluation-harness is not installed: pip install 'lm-eval'") from exc
    return tuple(TaskManager().all_tasks)


def check_run_tasks(names: Sequence[str], allow_code_execution: bool) -> None:
    """A run's eval_tasks, checked before it is queued: known names (near matches otherwise) and
    code execution only when asked for."""
    if not names:
        return
    check_code_execution(names, allow_code_execution)
    if offline_tasks_of(names) is not None:
        return  # the bundled tasks need no index
    check_known(names, [OFFLINE, *OFFLINE_TASKS, *lm_eval_tasks()])


def offline_tasks_of(names: Sequence[str]) -> tuple[str, ...] | None:
    """The bundled tasks a task list asks for (`offline`: all of them), or None when it names
    any other task."""
    if any(n not in (OFFLINE, *OFFLINE_TASKS) for n in names):
        return None
    return OFFLINE_TASKS if OFFLINE in names else tuple(t for t in OFFLINE_TASKS if t in names)


@functools.lru_cache(maxsize=32)
def offline_tokens(limit: int | None, tasks: tuple[str, ...] = OFFLINE_TASKS) -> int:
    """About how many tokens one model scores for the offline tasks at `limit` examples each:
    each docstring question with its choices, and the held-out documents whole. What the run
    cost estimate's prior for the benchmarks stage counts (app/runs/cost.py)."""
    from entrodrop.speed import CHARS_PER_TOKEN  # imports torch: only where an estimate is made

    rows = [json.loads(line) for line in DOCS_MC_DATA.read_text("utf-8").splitlines() if line]
    chars = 0
    for row in rows[:limit] if DOCS_MC in tasks else []:
        # The prompt counted once, not once per choice: so counted, the prior comes within 2x of
        # the default model's measured 75 s at limit 200 (docs/benchmarks.md); per choice, 4x.
        prompt = len(DOCS_MC_PROMPT) + len(row["docstring"])
        chars += prompt + sum(len(choice) + 1 for choice in row["choices"])
    docs = reference_heldout_texts()[:limit] if REFERENCE_PPL in tasks else []
    chars += sum(len(t) for t in docs)
    return int(chars / CHARS_PER_TOKEN)
