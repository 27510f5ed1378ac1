"""New run with a chat JSONL upload in headless Chromium: the data report (format, examples,
tokens, trained share, truncation) from POST /api/runs/data, and the preview's three layers
(untrained tokens greyed, trained ones coloured by entropy, drops struck out)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser_utils import assert_fits, browser_page, live_server, screenshot
from waiting import PATIENCE_MS

from app.main import create_app
from app.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

TURNS = [
    ("What does len return?", "The number of items in a container."),
    ("What does abs do?", "It returns the absolute value of a number."),
    ("Name a mutable sequence.", "A list is a mutable sequence."),
    ("What is a tuple?", "An immutable sequence of values, written with commas."),
]


def chat_jsonl() -> bytes:
    lines = [
        json.dumps(
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        )
        for q, a in TURNS * 3
    ]
    return ("\n".join(lines) + "\n").encode()


def test_a_chat_upload_gets_its_data_report_and_a_three_layer_preview(
    entrodrop_home: Path, tiny_chat_model_dir: Path
) -> None:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/runs/new")
        page.check('input[name="model_kind"][value="folder"]')
        page.fill("#model-folder", str(tiny_chat_model_dir))
        page.fill('[data-field="seq_len"]', "32")
        content = chat_jsonl()
        page.set_input_files(
            "#dataset-file",
            files=[{"name": "chat.jsonl", "mimeType": "application/json", "buffer": content}],
        )
        # The report follows the chosen file (before it, the built-in corpus's).
        report = page.locator('#data-report[data-state="done"]', has_text="format messages")
        report.wait_for(timeout=PATIENCE_MS)
        text = report.text_content() or ""
        assert text.startswith("format messages · 12 examples · ")
        assert " trained (" in text and "truncated at 32 tokens" in text
        tokens = int(text.split(" · ")[2].split()[0].replace(",", ""))
        trained = int(text.split(" · ")[3].split()[0].replace(",", ""))
        assert 0 < trained < tokens  # prompts and the template carry no loss

        page.click("#preview-button")
        page.locator("#preview-points button").nth(2).wait_for(timeout=PATIENCE_MS)
        page.locator("#preview-points button").nth(2).click()
        assert page.locator("#preview .preview-row .tok.untrained").count() > 0
        coloured = page.locator("#preview .preview-row .tok[class*=' c']")
        assert coloured.count() > 0
        assert page.locator("#preview .preview-row .tok.untrained.dropped").count() == 0
        assert page.locator("#preview .preview-example").first.is_visible()
        screenshot(page, "runs_new_chat")
        page.set_viewport_size({"width": 390, "height": 844})
        assert_fits(page)
        screenshot(page, "runs_new_chat_narrow")
        assert not errors, errors
