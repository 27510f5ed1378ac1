"""The facts the runs pages show, written once and sent to them in each page's data: metric names
and their labels, the chart panels, the status set and its badges' words, which methods drop
tokens."""

from __future__ import annotations

from typing import Any

from app.runs.runner import RESUMABLE
from entrodrop import metrics as m
from entrodrop.config import DROPPING_METHODS, METHODS
from entrodrop.eval.tasks import CODE_TASKS, OFFLINE, OFFLINE_TASKS, PAPER_SUITE
from entrodrop.runfolder import ACTIVE, STATUSES

# The curves of DESIGN.md section 2, grouped into the panels the run and compare pages draw.
PANELS: list[dict[str, Any]] = [
    {
        "id": "train",
        "title": "Training loss",
        "names": [m.TRAIN_LOSS],
        "log": True,
        "y_label": "loss (nats)",
    },
    {
        "id": "eval",
        "title": "Held-out loss: overall, low- and high-entropy tokens",
        "names": [m.EVAL_LOSS, m.EVAL_LOSS_LOW, m.EVAL_LOSS_HIGH],
        "log": True,
        "y_label": "loss (nats)",
    },
    {
        "id": "general",
        "title": "General-text loss (forgetting)",
        "names": [m.GENERAL_LOSS],
        "log": True,
        "y_label": "loss (nats)",
    },
    {
        "id": "drop",
        "title": "Drop rate: scheduled r(s) and realised fraction of trained tokens",
        "names": [m.RATE_SCHEDULED, m.FRACTION_REALISED],
        "log": False,
        "y_label": "fraction",
        # Why the realised fraction sits well under r(s): the two have different denominators.
        "note": "r(s) is the chance that a candidate (a token under the cut \u03c4) is dropped; the "
        "realised fraction counts the dropped tokens among all trained tokens, so it sits near "
        "(share of candidates) \u00d7 r(s): about q \u00d7 r(s) with the quantile cut.",
    },
    {
        "id": "entropy",
        "title": "Mean entropy of dropped vs kept tokens (nats)",
        "names": [m.ENTROPY_DROPPED, m.ENTROPY_KEPT],
        "log": False,
        "y_label": "entropy (nats)",
    },
    {
        "id": "lr",
        "title": "Learning rate",
        "names": [m.LEARNING_RATE],
        "log": False,
        "y_label": "learning rate",
    },
]
METRIC_LABELS: dict[str, str] = {name: m.label(name) for p in PANELS for name in p["names"]}
COMPARE_METRICS = m.COMPARED
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
# The runs list's "Started" for a run that never started (cancelled while queued).
NOT_STARTED = "not started"


def run_facts() -> dict[str, Any]:
    """What every runs page and its JSON twin carry, so neither Jinja nor JS retypes it."""
    return {
        "statuses": list(STATUSES),
        "status_words": STATUS_WORDS,
        "stopping_word": STOPPING_WORD,
        "not_started": NOT_STARTED,
        "active": list(ACTIVE),
        "resumable": list(RESUMABLE),
        "methods": list(METHODS),
        "dropping_methods": list(DROPPING_METHODS),
        "metric_labels": METRIC_LABELS,
        "metrics": m.vocabulary(),
        "deterministic_metrics": list(m.DETERMINISTIC),
        "panels": PANELS,
        "drop_panels": list(DROP_PANELS),
        "compare_metrics": list(COMPARE_METRICS),
        "x_axes": X_AXES,
        "benchmarks": {
            "offline": OFFLINE,
            "offline_tasks": list(OFFLINE_TASKS),
            "paper_suite": list(PAPER_SUITE),
            "code_tasks": list(CODE_TASKS),
        },
        "limits": {
            "name": MAX_NAME_CHARS,
            "notes": MAX_NOTES_CHARS,
            "tags": MAX_TAGS,
            "tag": MAX_TAG_CHARS,
            "tag_pattern": TAG_PATTERN,
        },
    }
