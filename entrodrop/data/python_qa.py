"""The built-in instruction set `python-qa`: questions about Python answered by its own docstrings.

Built offline, deterministically (for a given Python version), from what every CPython install
ships: for each public built-in function or class, each method of the core types and each
function of a few standard-library modules, a question ("What does `json.dumps` do?") and an
answer made of the first paragraph of its docstring and its signature. docs/data.md says more.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from typing import Any

from entrodrop.data.formats import Conversation

PYTHON_QA = "python-qa"
SYSTEM = "You answer questions about Python's built-ins and standard library, briefly."
CORE_TYPES = ("str", "bytes", "list", "dict", "set", "tuple", "int", "float")
MODULES = (
    "math", "os.path", "json", "re", "itertools", "functools", "collections", "string",
    "textwrap", "random", "statistics", "shutil", "heapq", "bisect", "copy", "glob",
    "fnmatch", "base64", "time", "operator",
)  # fmt: skip
QUESTIONS = (
    "What does `{name}` do in Python?",
    "Explain the Python {kind} `{name}`.",
    "In Python, what is `{name}` for?",
    "Briefly describe `{name}`.",
)
MIN_CHARS = 20  # shorter docstrings say too little to be an answer
MAX_CHARS = 400  # the answer's paragraph is cut at a sentence end before this


def _first_paragraph(doc: str) -> str:
    """A docstring's first paragraph on one line, cut at a sentence end within MAX_CHARS."""
    text = inspect.cleandoc(doc)
    para = " ".join(text.split("\n\n", 1)[0].split())
    if len(para) <= MAX_CHARS:
        return para
    cut = max(para.rfind(". ", 0, MAX_CHARS), para.rfind(".\n", 0, MAX_CHARS))
    return para[: cut + 1] if cut > MIN_CHARS else para[: MAX_CHARS - 1].rstrip() + "…"


def _signature(obj: Any, name: str) -> str | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = [p for p in sig.parameters.values() if p.name != "self"]
    text = str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))
    if len(text) >= 120 or " at 0x" in text:  # an object's default repr: changes every run
        return None
    return f"{name}{text}"


def _kind(obj: Any, owner: str | None) -> str:
    if inspect.isclass(obj):
        return "class"
    if owner in CORE_TYPES:
        return "method"
    return "built-in function" if owner is None else "function"


def _sources() -> Iterator[tuple[str, Any, str | None]]:
    """(dotted name, object, owner) in a fixed order: built-ins, core-type methods, modules."""
    import builtins

    for name in sorted(dir(builtins)):
        obj = getattr(builtins, name)
        if name.startswith("_") or not callable(obj):
            continue
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue
        yield name, obj, None
    for owner in CORE_TYPES:
        kind = getattr(builtins, owner)
        for name in sorted(vars(kind)):
            if not name.startswith("_"):
                yield f"{owner}.{name}", getattr(kind, name), owner
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in sorted(getattr(module, "__all__", None) or dir(module)):
            obj = getattr(module, name, None)
            if name.startswith("_") or not callable(obj):
                continue
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue
            yield f"{module_name}.{name}", obj, module_name


def python_qa_examples() -> list[Conversation]:
    """Every example of python-qa, in a fixed order (the held-out split takes every 5th)."""
    seen: set[str] = set()
    out: list[Conversation] = []
    for name, obj, owner in _sources():
        doc = inspect.getdoc(obj) or ""
        if len(doc) < MIN_CHARS or re.match(r"^[A-Za-z_.]+\(", doc):  # a bare C signature
            continue
        answer = _first_paragraph(doc)
        if answer in seen or len(answer) < MIN_CHARS:
            continue  # aliases share a docstring: one question each
        seen.add(answer)
        sig = _signature(obj, name)
        if sig is not None:
            answer += f"\n\nSignature: `{sig}`"
        question = QUESTIONS[len(out) % len(QUESTIONS)].format(name=name, kind=_kind(obj, owner))
        out.append(
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        )
    return out
