"""Where EntroDrop keeps its state: one home folder (ENTRODROP_HOME) with the database, runs and models."""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """The home folder: $ENTRODROP_HOME, default ~/.local/share/entrodrop (not created here)."""
    env = os.environ.get("ENTRODROP_HOME")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "entrodrop"


def runs_dir() -> Path:
    """Run folders live in <home>/runs/<id>/."""
    return home_dir() / "runs"


def model_cache_dir() -> Path:
    """Converted checkpoints (the default model's safetensors): $ENTRODROP_MODEL_CACHE or <home>/models."""
    env = os.environ.get("ENTRODROP_MODEL_CACHE")
    return Path(env).expanduser() if env else home_dir() / "models"


def cache_dir() -> Path:
    """Cached reference-entropy tensors and other derived data: <home>/cache."""
    return home_dir() / "cache"
