"""The Inspect page's policy choices (selection, schedule, drop mode), read from the library's
config: the options from each field's Literal type, the label and help from the field itself."""

from __future__ import annotations

from typing import Any, get_args

from entrodrop.config import EntroDropConfig

# The policy fields the page offers as a fixed list of choices (radio buttons or a select).
CHOICE_FIELDS = ("selection", "schedule", "drop_mode")


def policy_choice(name: str) -> dict[str, Any]:
    """One choice: the field's options (its Literal's values), label (title, else the name) and help."""
    info = EntroDropConfig.model_fields[name]
    return {
        "name": name,
        "label": info.title or name.replace("_", " "),
        "help": info.description or "",
        "options": list(get_args(info.annotation)),
    }


def policy_choices() -> dict[str, dict[str, Any]]:
    """Every choice the Inspect page offers, by field name (the page and /api/inspect carry it)."""
    return {name: policy_choice(name) for name in CHOICE_FIELDS}
