"""Which checkpoint folders a server may load by path (a shared server must not read any folder)."""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings
from entrodrop.models import ModelLoadError
from entrodrop.paths import PathError, resolve_user_path


def check_model_folder(path: Path, settings: Settings) -> Path:
    """Resolve a model folder named in a request; refuse it unless this server allows it.

    A private server (no access token) loads any folder, as the CLI does; a shared one only
    folders inside ENTRODROP_ALLOWED_MODEL_DIRS (symlinks resolved, so none lead out).
    """
    try:
        full = resolve_user_path(path)
        allowed = [resolve_user_path(d) for d in settings.allowed_model_dirs]
    except PathError as exc:
        raise ModelLoadError(str(exc)) from exc
    if not allowed:
        if settings.token:
            raise ModelLoadError(
                "loading checkpoints by path is disabled on this shared server "
                "(set ENTRODROP_ALLOWED_MODEL_DIRS); use 'default' or a run"
            )
        return full
    if any(full == root or root in full.parents for root in allowed):
        return full
    raise ModelLoadError(f"{path} is outside the allowed model folders")
