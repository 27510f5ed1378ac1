"""The model and data pickers in headless Chromium: a refused upload shows the server's own message
and keeps it (the form's checks do not overwrite it), on New run and on New study, whose pickers
are New run's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import browser_page, live_server, screenshot
from runs_helpers import fake_app
from waiting import PATIENCE_S

from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.browser

# Files a first-time user tries: chat data, a spreadsheet, an empty file, a Latin-1 file.
FILES = {
    "chat.jsonl": b'{"messages": [{"role": "user", "content": "hi"}]}\n',
    "table.csv": b"text,label\nhello,1\n",
    "empty.txt": b"",
    "latin1.txt": "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1"),
}
GOOD = ("notes.txt", b"first note\n\n\nsecond note\n")


def server_answer(url: str, name: str, content: bytes) -> httpx.Response:
    """What the server says to this file (a script's request: no browser, no CSRF header)."""
    return httpx.post(f"{url}/api/uploads", files={"file": (name, content)}, timeout=PATIENCE_S)


def choose(page: Any, name: str, content: bytes) -> None:
    page.set_input_files(
        "#dataset-file", files=[{"name": name, "mimeType": "text/plain", "buffer": content}]
    )


def dataset_error(page: Any) -> str:
    return str(page.text_content('[data-error-for="dataset"]') or "")


def checks(page: Any) -> int:
    return int(page.get_attribute("#run-form", "data-checks") or 0)


def test_new_run_shows_each_refused_upload_in_the_servers_words(entrodrop_home: Path) -> None:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/runs/new")
        page.wait_for_function("Number(document.querySelector('#run-form').dataset.checks) > 0")
        refused = 0
        for name, content in FILES.items():
            answer = server_answer(url, name, content)
            before = checks(page)
            choose(page, name, content)
            if answer.status_code == 201:  # a format the server reads (chat data, once supported)
                page.locator("#upload-status", has_text=f"{name}: ").wait_for()
                continue
            refused += 1
            detail = answer.json()["detail"]
            assert answer.status_code == 422 and name in detail, detail
            page.wait_for_function(
                "(d) => document.querySelector('[data-error-for=\"dataset\"]').textContent === d",
                arg=detail,
            )
            # A check of the form has run since the answer came, and the message stands.
            page.wait_for_function(
                f"Number(document.querySelector('#run-form').dataset.checks) > {before}"
            )
            assert dataset_error(page) == detail
            # So it does after any other edit of the form, until another file is chosen.
            shown = checks(page)
            page.fill('[data-field="seq_len"]', "64")
            page.wait_for_function(
                f"Number(document.querySelector('#run-form').dataset.checks) > {shown}"
            )
            assert dataset_error(page) == detail, name
        assert refused >= 2  # the empty and the Latin-1 file at least
        screenshot(page, "runs_new_upload_error")
        assert "is not UTF-8 text (byte 3)" in dataset_error(page)  # latin1.txt: "caf\xe9"

        choose(page, *GOOD)
        page.locator("#upload-status", has_text="notes.txt: 2 texts").wait_for()
        page.wait_for_function(
            "!document.querySelector('[data-error-for=\"dataset\"]').textContent"
        )
        page.wait_for_function(
            "document.querySelector('#config-json').textContent.includes('uploads')"
        )
        assert not errors, errors


def test_new_study_has_new_runs_pickers(entrodrop_home: Path, tmp_path: Path) -> None:
    """Upload (with the server's refusal shown), built-in data, a model folder by path."""
    app = fake_app(entrodrop_home)
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/studies/new")
        page.locator("#run-count").filter(has_text="runs").wait_for()
        assert page.is_visible('input[name="model_kind"][value="folder"]')
        assert "any path" in (page.text_content("#data-rule") or "")  # a private server's rule
        choose(page, "empty.txt", b"")
        page.locator('[data-error-for="dataset"]', has_text="empty.txt is empty").wait_for()
        screenshot(page, "study_new_upload_error")
        choose(page, *GOOD)
        page.locator("#upload-status", has_text="notes.txt: 2 texts").wait_for()
        page.wait_for_function(
            "!document.querySelector('[data-error-for=\"dataset\"]').textContent"
        )
        for box in page.locator(".variant").all():
            box.uncheck()
        page.check("#variants label:has(code:text-is('none')) input")
        page.fill("#f-seeds", "0")
        page.click("#launch")
        page.wait_for_url("**/studies/s*")
        study_id = page.url.rsplit("/", 1)[1]
        study = httpx.get(f"{url}/api/studies/{study_id}", timeout=PATIENCE_S).json()
        dataset = study["config"]["base"]["dataset"]
        assert dataset.startswith(str(entrodrop_home / "uploads")) and dataset.endswith(".txt")
        assert not errors, errors
