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


def dev_model_cache() -> Path:
    """The converted default model for tests and bench scripts, whose homes are throwaway folders:
    one per user and transformers version, shared by every checkout (the conversion takes about a
    minute of CPU); $ENTRODROP_DEV_MODEL_CACHE overrides it."""
    env = os.environ.get("ENTRODROP_DEV_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    import transformers  # the conversion's output depends on its GGUF reader

    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "entrodrop" / f"models-transformers-{transformers.__version__}"
