"""The built-in offline corpora: the Python reference (text), python-qa (instructions), general text."""

from __future__ import annotations

import sysconfig
from pathlib import Path

PYTHON_REFERENCE = "python-reference"
GENERAL_TEXT = "general-text"


def python_reference_topics() -> dict[str, str]:
    """The Python language reference that ships with CPython: 79 topics, ~465K characters."""
    import pydoc_data.topics

    return dict(sorted(pydoc_data.topics.topics.items()))


def default_general_texts() -> list[str]:
    """Text for the forgetting check: CPython's LICENSE.txt (history and terms).

    LICENSE.txt ships with every CPython install and is far from the Python reference's style
    (but close to legal text: such corpora should name their own general text); where a
    distribution strips it, the Zen of Python stands in (short, so the check is noisier).
    """
    path = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
        return [p.strip() for p in text.split("\n\n\n") if p.strip()]
    import codecs
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this
    return [codecs.decode(this.s, "rot13")]
