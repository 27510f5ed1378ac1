"""Uploaded dataset files: checked, then kept under <home>/uploads by a content-addressed name."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from app.errors import PayloadTooLarge
from app.settings import Settings
from entrodrop.data import parse_text_file, uploads_dir

# Multipart framing around an uploaded file, on top of its own cap (app.limits caps the body).
UPLOAD_FRAMING = 64_000


def too_large(settings: Settings) -> PayloadTooLarge:
    """The 413 for a file over the cap."""
    return PayloadTooLarge(f"the file is larger than the {settings.max_upload_bytes} bytes allowed")


def save_upload(raw: bytes, filename: str, settings: Settings) -> dict[str, Any]:
    """Check an uploaded dataset file and keep it under <home>/uploads (content-addressed name).

    Raises PayloadTooLarge (413) or the library's DataError (422) with a message for a person.
    """
    if len(raw) > settings.max_upload_bytes:
        raise too_large(settings)
    name = Path(filename or "upload.txt").name
    # DataError: wrong type, empty, not UTF-8, bad JSONL; DataTooLarge (413): over the text budget
    texts = parse_text_file(raw, name, settings.text_budget)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:60] or "upload"
    digest = hashlib.sha256(raw).hexdigest()[:12]
    folder = uploads_dir(settings.home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{digest}{Path(name).suffix.lower()}"
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(raw)
        tmp.replace(path)
    return {
        "dataset": str(path),
        "name": name,
        "bytes": len(raw),
        "n_texts": len(texts),
        "n_chars": sum(len(t) for t in texts),
    }
