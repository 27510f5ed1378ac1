"""Dataset paths a user names: length limits, the allowed folders, the uploads folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from entrodrop.data.errors import DataError
from entrodrop.paths import PathError, expand_user, resolve_user_path

NAME_MAX = 255  # characters in one file or folder name (Linux, macOS, Windows alike)
PATH_MAX = 4096


def check_name_lengths(spec: str) -> None:
    """Refuse a model or dataset name the file system could not even look up (a DataError)."""
    too_long = next((p for p in Path(spec).parts if len(p) > NAME_MAX), None)
    if too_long is not None:
        raise DataError(
            f"the name {too_long[:40]}... has {len(too_long)} characters; a file or folder "
            f"name has at most {NAME_MAX}"
        )
    if len(spec) > PATH_MAX:
        raise DataError(f"the path has {len(spec)} characters; at most {PATH_MAX} are allowed")


def check_path_allowed(path: str | Path, allowed_dirs: Sequence[str | Path]) -> Path:
    """Resolve a user-named path (symlinks followed) and refuse it unless inside an allowed folder."""
    if not allowed_dirs:
        raise DataError("naming files by path is disabled on this server (no allowed folders)")
    raw = str(path)
    try:
        candidate = expand_user(raw)
        roots = [resolve_user_path(base) for base in allowed_dirs]
        fulls = [resolve_user_path(root / candidate) for root in roots]  # absolute: candidate
    except PathError as exc:
        raise DataError(str(exc)) from exc
    for root, full in zip(roots, fulls, strict=True):
        if full == root or root in full.parents:
            return full
    raise DataError(f"{raw} is outside the allowed data folders")


def uploads_dir(home: str | Path) -> Path:
    """Where the dashboard keeps uploaded dataset files."""
    return Path(home) / "uploads"
