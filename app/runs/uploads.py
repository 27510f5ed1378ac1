"""Uploaded dataset files: checked, then kept under <home>/uploads by a content-addressed name."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from app.errors import AppError, PayloadTooLarge
from app.runs.schemas import UploadPublic
from app.settings import Settings
from entrodrop.config import DataFormatChoice
from entrodrop.data import uploads_dir
from entrodrop.sandbox import check_upload

# Multipart framing around an uploaded file, on top of its own cap (app.limits caps the body).
UPLOAD_FRAMING = 64_000
PART = ".part"  # an upload being written; removed on failure and at server start


def too_large(settings: Settings) -> PayloadTooLarge:
    """The 413 for a file over the cap."""
    return PayloadTooLarge(f"the file is larger than the {settings.max_upload_bytes} bytes allowed")


class TooManyUploads(AppError):
    """The uploads folder holds settings.max_uploads files already."""

    status_code = 429


def stored(folder: Path) -> tuple[int, int]:
    """(files, bytes) kept in the uploads folder; `.part` files are not uploads."""
    count = size = 0
    for entry in folder.iterdir():
        if entry.is_file() and entry.suffix != PART:
            count += 1
            size += entry.stat().st_size
    return count, size


def check_room(folder: Path, new_bytes: int, settings: Settings) -> None:
    """Refuse a new file past the uploads folder's caps: 429 (files) or 413 (bytes)."""
    count, size = stored(folder)
    if count + 1 > settings.max_uploads:
        raise TooManyUploads(
            f"the server keeps at most {settings.max_uploads} uploaded files and has {count}; "
            "remove old ones from its uploads folder (ENTRODROP_MAX_UPLOADS)"
        )
    if size + new_bytes > settings.max_upload_total_bytes:
        raise PayloadTooLarge(
            f"the uploads folder would pass its {settings.max_upload_total_bytes} bytes "
            f"({size} used); remove old uploads (ENTRODROP_MAX_UPLOAD_TOTAL_BYTES)"
        )


def save_upload(
    raw: bytes, filename: str, settings: Settings, data_format: DataFormatChoice = "auto"
) -> UploadPublic:
    """Check an uploaded dataset file and keep it under <home>/uploads (content-addressed name).

    Raises PayloadTooLarge (413: the file, or the folder's total), TooManyUploads (429) or the
    library's DataError (422) with a message for a person.
    """
    if len(raw) > settings.max_upload_bytes:
        raise too_large(settings)
    name = Path(filename or "upload.txt").name
    # Parsed in a memory-limited child (a file may lie about its size). DataError (422): wrong
    # type, empty, not UTF-8, bad JSON, an unusable record or column, mixed formats, a
    # conversation out of order; DataTooLarge (413): over the text budget or the memory.
    summary = check_upload(raw, name, settings.text_budget, data_format)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:60] or "upload"
    digest = hashlib.sha256(raw).hexdigest()[:12]
    folder = uploads_dir(settings.home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{digest}{Path(name).suffix.lower()}"
    if not path.exists():
        check_room(folder, len(raw), settings)
        tmp = path.with_suffix(path.suffix + PART)
        try:
            tmp.write_bytes(raw)
            tmp.replace(path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk leaves no half-written file behind
            raise
    return UploadPublic(
        dataset=str(path),
        name=name,
        bytes=len(raw),
        format=summary.format,
        n_examples=summary.n_examples,
        n_texts=summary.n_examples,
        n_chars=summary.n_chars,
    )
