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


class PathError(ValueError):
    """A path a user named that cannot even be looked up: an unknown ~user, a NUL byte, a loop of
    symlinks. A message for a person, never the RuntimeError pathlib raises for some of them."""


def expand_user(spec: str | Path) -> Path:
    """`spec` with `~` or `~user` expanded (PathError for an unknown user or a NUL byte)."""
    text = str(spec)
    if "\x00" in text:
        raise PathError("a path may not contain a NUL byte")
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:  # pathlib's answer to ~nosuchuser (or a user without a home)
        user = text[1:].split("/", 1)[0] or os.environ.get("USER", "")
        raise PathError(f"{text}: there is no home folder of a user {user!r} here") from exc


def resolve_user_path(spec: str | Path) -> Path:
    """`spec` expanded and made absolute with symlinks followed (PathError for a symlink loop or a
    path the system refuses to look up)."""
    path = expand_user(spec)
    try:
        return path.resolve()
    except RuntimeError as exc:  # pathlib's answer to a symlink loop
        raise PathError(f"{spec}: a loop of symbolic links") from exc
    except OSError as exc:
        raise PathError(f"{spec}: {exc.strerror or exc}") from exc
