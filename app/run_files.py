"""Read the files a training process leaves in its run folder: status, logs, checkpoints, errors."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
LOG = "log.txt"
OUTPUT = "output.txt"  # the child's own stdout/stderr: tracebacks land here
STOP = "STOP"
SUMMARY = "summary.json"

# "ValueError: ...", "torch.OutOfMemoryError: ...", "entrodrop.data.DataError: ..."
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(Error|Exception|Exit|Interrupt)\b.*:\s*\S")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None if the file is missing, partial or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_status(run_dir: Path, since: float = 0.0) -> dict[str, Any] | None:
    """status.json (written atomically by the child), or None; None too if older than `since`
    (a resumed run's folder holds the previous attempt's status until the child rewrites it)."""
    st = read_json(run_dir / STATUS)
    if st is None:
        return None
    updated = st.get("updated_at")
    if since and isinstance(updated, int | float) and updated < since - 1.0:
        return None
    return st


def tail_lines(path: Path, n: int = 40, max_bytes: int = 32_768) -> list[str]:
    """The last `n` lines of a text file, reading at most `max_bytes` from its end."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line is probably cut
    # Progress bars redraw with carriage returns: keep only what a terminal would show last.
    return [line.rsplit("\r", 1)[-1] for line in lines][-n:]


ATTEMPT_HEADER = "--- attempt "  # the job runner's line before each launch in output.txt


def error_from_lines(lines: list[str]) -> str | None:
    """The most telling error line of a log tail: the last exception line, else the last line."""
    starts = [i for i, line in enumerate(lines) if line.startswith(ATTEMPT_HEADER)]
    if starts:
        lines = lines[starts[-1] + 1 :]  # only this attempt's output
    for line in reversed(lines):
        text = line.strip()
        if _EXC_LINE.match(text):
            return text[:2000]
    for line in reversed(lines):
        if line.strip():
            return line.strip()[:2000]
    return None


def describe_exit(code: int | None) -> str:
    """A person's words for a process exit code (negative: killed by a signal)."""
    if code is None:
        return "the training process ended"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"the training process was killed by {name}{hint}"
    return f"the training process exited with code {code}"


def checkpoints(run_dir: Path) -> list[Path]:
    """checkpoint-<step>/ folders, oldest first."""
    found = [p for p in run_dir.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[11:]))


def has_final_model(run_dir: Path) -> bool:
    return (run_dir / "model" / "config.json").is_file()
