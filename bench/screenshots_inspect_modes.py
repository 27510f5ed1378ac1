"""The README's screenshots of Inspect's Generate and Conversation modes with the bundled default
model: docs/screenshots/inspect-generate.png and inspect-conversation.png (1400 px).

    PYTHONPATH=. .venv/bin/python bench/screenshots_inspect_modes.py

Serves a throwaway home on the converted default model (the tests' cache), generates a chat
answer, then scores a pasted conversation, in headless Chromium.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "screenshots"
sys.path[:0] = [str(REPO), str(REPO / "tests")]

PROMPT = "Write a Python function that returns the squares of a list of numbers."
CONVERSATION = """system: You are a concise Python tutor.

user: What does len() return for a dictionary?

assistant: The number of keys in the dictionary. For example, len({"a": 1, "b": 2}) is 2."""


def generate(page: object) -> None:
    page.check('input[name="mode"][value="generate"]')  # type: ignore[attr-defined]
    page.fill("#gen-prompt", PROMPT)  # type: ignore[attr-defined]
    page.check("#gen-chat")  # type: ignore[attr-defined]
    page.uncheck("#gen-greedy")  # type: ignore[attr-defined]
    page.fill("#gen-temperature", "0.7")  # type: ignore[attr-defined]
    page.fill("#gen-max_new_tokens", "80")  # type: ignore[attr-defined]
    page.click("#gen-btn")  # type: ignore[attr-defined]
    page.wait_for_function("window.EntroInspect.gen.runs > 0")  # type: ignore[attr-defined]
    page.hover('#gen-panes .tok[data-i="12"]')  # type: ignore[attr-defined]
    page.screenshot(path=str(OUT / "inspect-generate.png"), full_page=True)  # type: ignore[attr-defined]


def conversation(page: object) -> None:
    page.mouse.move(0, 0)  # type: ignore[attr-defined]
    page.check('input[name="mode"][value="conversation"]')  # type: ignore[attr-defined]
    page.fill("#conv-text", CONVERSATION)  # type: ignore[attr-defined]
    page.click("#score-btn")  # type: ignore[attr-defined]
    page.wait_for_function("window.EntroInspect.state.renderCount > 0")  # type: ignore[attr-defined]
    page.screenshot(path=str(OUT / "inspect-conversation.png"), full_page=True)  # type: ignore[attr-defined]


def main() -> int:
    from browser_utils import browser_page, live_server

    from app.main import create_app
    from app.settings import Settings
    from entrodrop.paths import dev_model_cache

    model = dev_model_cache() / "smollm2-135m-instruct"
    home = Path(tempfile.mkdtemp(prefix="entrodrop-inspect-shot-"))
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        live_server(create_app(Settings(home=home, model=str(model)))) as url,
        browser_page() as page,
    ):
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('model-status').dataset.state === 'ready'")
        generate(page)
        conversation(page)
    print("saved", OUT / "inspect-generate.png", OUT / "inspect-conversation.png")
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
