"""The facts the runs pages show, written once and sent to them in each page's data: metric names
and their labels, the chart panels, the status set and its badges' words, which methods drop
tokens."""

from __future__ import annotations

from typing import Any

from app.runs.runner import RESUMABLE
from entrodrop.config import DROPPING_METHODS, METHODS
from entrodrop.runfolder import ACTIVE, STATUSES

# One label per metric the training process writes (DESIGN.md section 2): legends and tables.
METRIC_LABELS: dict[str, str] = {
    "train/loss": "train",
    "eval/loss": "held-out: all tokens",
    "eval/loss_low_entropy": "held-out: low-entropy",
    "eval/loss_high_entropy": "held-out: high-entropy",
    "general/loss": "general text",
    "drop/rate_scheduled": "scheduled r(s)",
    "drop/fraction_realised": "realised fraction",
    "drop/entropy_dropped": "dropped tokens",
    "drop/entropy_kept": "kept tokens",
    "train/learning_rate": "learning rate",
}
# The curves of DESIGN.md section 2, grouped into the panels the run and compare pages draw.
PANELS: list[dict[str, Any]] = [
    {"id": "train", "title": "Training loss", "names": ["train/loss"], "log": True},
    {
        "id": "eval",
        "title": "Held-out loss: overall, low- and high-entropy tokens",
        "names": ["eval/loss", "eval/loss_low_entropy", "eval/loss_high_entropy"],
        "log": True,
    },
    {
        "id": "general",
        "title": "General-text loss (forgetting)",
        "names": ["general/loss"],
        "log": True,
    },
    {
        "id": "drop",
        "title": "Drop rate: scheduled r(s) and realised fraction",
        "names": ["drop/rate_scheduled", "drop/fraction_realised"],
        "log": False,
    },
    {
        "id": "entropy",
        "title": "Mean entropy of dropped vs kept tokens (nats)",
        "names": ["drop/entropy_dropped", "drop/entropy_kept"],
        "log": False,
    },
    {"id": "lr", "title": "Learning rate", "names": ["train/learning_rate"], "log": False},
]
COMPARE_METRICS = (
    "eval/loss", "eval/loss_low_entropy", "eval/loss_high_entropy", "general/loss", "train/loss",
)  # fmt: skip
# The x-axes a chart can use: each metric row has step, epoch and time; tokens = step × tokens/step.
X_AXES: list[dict[str, str]] = [
    {"id": "step", "label": "step"},
    {"id": "epoch", "label": "epoch"},
    {"id": "tokens", "label": "tokens seen"},
    {"id": "time", "label": "wall time (s)"},
]
# Bounds of what PATCH /api/runs/{id} takes (app.runs.schemas.RunPatch); the page's inputs too.
MAX_NAME_CHARS = 120
MAX_NOTES_CHARS = 4000
MAX_TAGS = 16
MAX_TAG_CHARS = 32
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:+-]*$"
# Panels that only mean something for a method that drops tokens.
DROP_PANELS = ("drop", "entropy")
# What a status badge says (static/common/badges.js; its colours: style.css's .status-<status>):
# the status itself, and for a running run asked to stop, "running (stopping)".
STATUS_WORDS: dict[str, str] = {status: status for status in STATUSES}
STOPPING_WORD = "stopping"


def run_facts() -> dict[str, Any]:
    """What every runs page and its JSON twin carry, so neither Jinja nor JS retypes it."""
    return {
        "statuses": list(STATUSES),
        "status_words": STATUS_WORDS,
        "stopping_word": STOPPING_WORD,
        "active": list(ACTIVE),
        "resumable": list(RESUMABLE),
        "methods": list(METHODS),
        "dropping_methods": list(DROPPING_METHODS),
        "metric_labels": METRIC_LABELS,
        "panels": PANELS,
        "drop_panels": list(DROP_PANELS),
        "compare_metrics": list(COMPARE_METRICS),
        "x_axes": X_AXES,
        "limits": {
            "name": MAX_NAME_CHARS,
            "notes": MAX_NOTES_CHARS,
            "tags": MAX_TAGS,
            "tag": MAX_TAG_CHARS,
            "tag_pattern": TAG_PATTERN,
        },
    }
