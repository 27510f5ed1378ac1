"""The offline multiple-choice task's questions: which function does this docstring document?

Built once from the docstrings of functions that ship with CPython (builtins and a fixed list of
standard-library modules) and committed as ``data/python_docs_mc.jsonl``, so every machine asks
the same questions whatever its Python version:

    python -m entrodrop.eval.docs_mc      # rewrites the file (deterministic for one CPython)

A question is the first paragraph of a docstring, with the function's own name blanked out
(``___``); its four choices are that function and three others of the same module, drawn with a
fixed seed, in a shuffled order. At most 30 questions per module. Chance is 25%.
"""

from __future__ import annotations

import importlib
import inspect
import json
import random
import re
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "python_docs_mc.jsonl"
MODULES = (
    "builtins", "os", "os.path", "math", "string", "json", "re", "itertools", "functools",
    "collections", "textwrap", "shutil", "statistics", "random", "heapq", "bisect", "operator",
    "glob", "fnmatch", "tempfile", "base64", "binascii", "zlib", "hashlib", "time", "calendar",
    "copy", "pprint", "difflib", "csv", "struct", "inspect", "unicodedata", "html", "urllib.parse",
)  # fmt: skip
SEED = 20261205
MIN_CHARS, MAX_CHARS = 40, 400
CHOICES = 4
PER_MODULE = 30  # at most, so that one large module (os) does not make up a third of the set
LETTERS = "ABCD"


def _first_paragraph(doc: str) -> str:
    """The docstring's first paragraph, on one line, without a leading call signature."""
    paragraphs = [p for p in re.split(r"\n\s*\n", inspect.cleandoc(doc)) if p.strip()]
    if paragraphs and re.match(r"^[\w.]+\(.*\)( -> .*)?$", paragraphs[0].strip().splitlines()[0]):
        first = paragraphs[0].strip().splitlines()[1:]  # "name(args) -> result" then the text
        paragraphs = [" ".join(first)] + paragraphs[1:] if first else paragraphs[1:]
    return " ".join(paragraphs[0].split()) if paragraphs else ""


def _functions(module_name: str) -> dict[str, str]:
    """Public functions of a module with a usable docstring: name -> first paragraph."""
    module = importlib.import_module(module_name)
    found: dict[str, str] = {}
    for name in sorted(dir(module)):
        obj = getattr(module, name)
        if name.startswith("_") or not callable(obj) or inspect.isclass(obj):
            continue
        if getattr(obj, "__module__", module_name) not in (module_name, None, "posix"):
            continue  # re-exported from another module: asked there, if anywhere
        text = _first_paragraph(inspect.getdoc(obj) or "")
        if MIN_CHARS <= len(text) <= MAX_CHARS:
            found[name] = re.sub(rf"\b{re.escape(name)}\b", "___", text)
    return found


def build(seed: int = SEED) -> list[dict[str, Any]]:
    """Every question, in module order; deterministic for one CPython and seed."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for module_name in MODULES:
        docs = _functions(module_name)
        names = list(docs)
        if len(names) < CHOICES:
            continue
        asked = sorted(rng.sample(names, min(PER_MODULE, len(names))))
        for name in asked:
            others = rng.sample([n for n in names if n != name], CHOICES - 1)
            options = [name, *others]
            rng.shuffle(options)
            qualified = [n if module_name == "builtins" else f"{module_name}.{n}" for n in options]
            rows.append(
                {
                    "module": module_name,
                    "docstring": docs[name],
                    "choices": qualified,
                    "label": options.index(name),
                }  # fmt: skip
            )
    return rows


def main() -> None:
    rows = build()
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"{len(rows)} questions from {len(MODULES)} modules -> {DATA}")


if __name__ == "__main__":
    main()
