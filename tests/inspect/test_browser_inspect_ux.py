"""The Inspect page's long-job and sharing features in headless Chromium with the tiny model:
estimate, progress and cancel, colour modes, the URL state, drop marks that hide no character,
seed messages, and the 390 px layout."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import ARTIFACTS, live_server, screenshot
from PIL import Image
from waiting import PATIENCE_MS, PATIENCE_S, wait_sync

from app.main import create_app
from app.score_job import ScoreJob
from app.settings import Settings

pytestmark = pytest.mark.browser

TEXT = "def __init__(self, name):\n    self.__name__ = name\n\nThe quick brown fox.\n"
LONG = TEXT * 30  # several 512-token windows of the tiny model


class Gate:
    """Holds a long job at each window until the test lets it go one window further."""

    def __init__(self) -> None:
        self.permits = threading.Semaphore(0)
        self.jobs: list[ScoreJob] = []
        self.real = ScoreJob.progress

    def __call__(self, job: ScoreJob, done: int, total: int) -> None:
        if total > 600:
            if job not in self.jobs:
                self.jobs.append(job)
            if done:
                assert self.permits.acquire(timeout=PATIENCE_S)
        self.real(job, done, total)


@pytest.fixture(scope="module")
def gate() -> Iterator[Gate]:
    g = Gate()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ScoreJob, "progress", lambda job, done, total: g(job, done, total))
        yield g
    for _ in range(50):  # nothing stays blocked after the module
        g.permits.release()


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, gate: Gate
) -> Iterator[str]:
    home = tmp_path_factory.mktemp("ux-home")
    with live_server(create_app(Settings(home=home, model=str(tiny_model_dir)))) as url:
        yield url


def score_text(page: Any, text: str) -> None:
    before = page.evaluate("window.EntroInspect.state.renderCount")
    page.fill("#text", text)
    page.click("#score-btn")
    page.wait_for_function(f"window.EntroInspect.state.renderCount > {before}", timeout=PATIENCE_MS)


def wait_status(page: Any, needle: str) -> None:
    page.wait_for_function(
        "(s) => document.getElementById('score-status').textContent.includes(s)",
        arg=needle,
        timeout=PATIENCE_MS,
    )


def test_estimate_progress_and_cancel(page: Any, gate: Gate) -> None:
    page.fill("#text", LONG)
    page.wait_for_function("document.getElementById('text-info').textContent.includes('measure')")
    info = page.inner_text("#text-info")
    assert "tokens ·" in info and ("no measurement" in info or "tokens/s measured" in info)
    n_jobs = len(gate.jobs)
    page.click("#score-btn")
    page.wait_for_function(f"window.EntroInspect.state.job && {n_jobs} >= 0")
    wait_status(page, "tokens")  # "Scoring 0 / N tokens"
    assert page.locator("#score-progress").is_visible()
    assert page.locator("#cancel-btn").is_visible()
    assert len(gate.jobs) == n_jobs + 1
    job = gate.jobs[-1]
    gate.permits.release()  # one window: the bar moves
    page.wait_for_function("document.getElementById('score-progress').value > 0")
    screenshot(page, "inspect_progress")
    page.click("#cancel-btn")
    wait_status(page, "Cancelled")
    page.wait_for_function("!window.EntroInspect.state.job")
    assert not page.locator("#score-progress").is_visible()
    # The server notices the closed connection and cancels the job; the worker stops at its next
    # window.
    wait_sync(lambda: job.cancelled, what="the server to cancel the job of the closed connection")
    gate.permits.release()
    assert job.done < job.total
    score_text(page, TEXT)  # the worker is free for the next text
    page.fill("#text", TEXT + " ")
    page.wait_for_function(
        "document.getElementById('text-info').textContent.includes('tokens/s measured')"
    )


def test_colour_modes_and_fixed_scale(page: Any) -> None:
    score_text(page, TEXT)
    legend = page.locator("#legend")
    for mode in ("surprisal", "prob", "rank", "entropy"):
        page.select_option("#colour", mode)
        assert legend.get_attribute("data-mode") == mode
    page.select_option("#colour", "rank")
    classes = page.evaluate(
        "[...document.querySelectorAll('#panes .tok')].map((s) => s.className.match(/\\br\\d/))"
        ".filter(Boolean).map((m) => m[0])"
    )
    ranks = page.evaluate("window.EntroInspect.state.result.panes[0].score.tokens.map(t => t.rank)")
    expected = [
        f"r{next((b for b, top in enumerate([10, 100, 1000]) if r <= top), 3)}"
        for r in ranks
        if r is not None
    ]
    assert classes == expected
    # The legend's samples wear the same colours as the tokens.
    bg = "(sel) => getComputedStyle(document.querySelector(sel)).backgroundColor"
    for b in set(classes):
        assert page.evaluate(bg, f"#legend .tok.sample.{b}") == page.evaluate(
            bg, f"#panes .tok.{b}"
        )
    page.select_option("#colour", "entropy")
    page.select_option("#scale", "fixed")
    assert "8.0 nats" in legend.inner_text()
    score_text(page, "Another text, another range of entropies.")
    assert "8.0 nats" in legend.inner_text()  # the scale stays for every text
    page.select_option("#scale", "auto")


def test_url_state_round_trip(page: Any, server: str) -> None:
    score_text(page, TEXT)
    page.select_option("#colour", "surprisal")
    page.select_option("#scale", "fixed")
    page.fill("#quantile", "0.3")
    page.fill("#seed", "11")
    page.fill("#progress", "0.7")
    page.click("#copy-link")
    link = page.input_value("#share-link")
    assert "Link copied: it reopens" in page.inner_text("#share-note")
    page.goto("about:blank")
    page.goto(link)  # as whoever receives the link
    page.wait_for_function("window.EntroInspect.state.renderCount > 0", timeout=PATIENCE_MS)
    assert page.input_value("#text") == TEXT
    assert page.input_value("#colour") == "surprisal"
    assert page.input_value("#scale") == "fixed"
    policy = page.evaluate("window.EntroInspect.currentPolicy()")
    assert policy["config"]["quantile"] == 0.3 and policy["config"]["seed"] == 11
    assert policy["progress"] == 0.7
    page.fill("#text", "x" * 2500)
    page.click("#copy-link")
    assert "without the text" in page.inner_text("#share-note")
    assert "text=" not in page.input_value("#share-link")


def test_bad_seed_and_text_messages(page: Any) -> None:
    score_text(page, TEXT)
    marks = page.evaluate("document.querySelectorAll('.tok.drop').length")
    for value, needle in [("-5", "not a whole number"), ("", "seed is empty")]:
        page.fill("#seed", value)
        page.wait_for_function(
            "(n) => document.getElementById('seed-error').textContent.includes(n)", arg=needle
        )
        assert page.locator("#seed-error").is_visible()
        assert page.evaluate("document.querySelectorAll('.tok.drop').length") == marks
    page.fill("#seed", "0")
    page.wait_for_selector("#seed-error", state="hidden")
    page.fill("#text", "   \n ")
    page.click("#score-btn")
    wait_status(page, "only whitespace")


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.txt", b"", "empty.txt is empty"),
        ("latin1.txt", "caf\u00e9 cr\u00e8me\n".encode("latin-1"), "is not UTF-8 text (byte 3)"),
        ("x.bin", b"\x00\xff\xfe", "looks like a binary file"),
    ],
)
def test_a_file_that_is_not_text_is_refused_in_the_servers_words(
    page: Any, server: str, name: str, content: bytes, words: str
) -> None:
    """Inspect's upload says what is wrong, in the words the server gives a dataset upload."""
    answer = httpx.post(f"{server}/api/text-file", files={"file": (name, content)}, timeout=60)
    assert answer.status_code == 422 and words in answer.json()["detail"]
    page.fill("#text", "kept")
    page.set_input_files(
        "#file", files=[{"name": name, "mimeType": "text/plain", "buffer": content}]
    )
    wait_status(page, answer.json()["detail"])
    assert page.get_attribute("#score-status", "data-kind") == "error"
    assert "nothing was loaded" in page.inner_text("#score-status")
    assert page.input_value("#text") == "kept"


def test_a_text_file_is_loaded_through_the_server(page: Any) -> None:
    page.set_input_files(
        "#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"x = 1\n"}]
    )
    wait_status(page, "Loaded notes.txt (6 characters)")
    assert page.input_value("#text") == "x = 1\n"


def test_dropped_marks_cover_no_character(page: Any) -> None:
    """A dropped token's frame lies outside its glyphs: `__name__` keeps its underscores."""
    score_text(page, TEXT)
    i = page.evaluate(
        "window.EntroInspect.state.result.panes[0].score.tokens.findIndex(t => t.text.includes('_'))"
    )
    span = page.locator(f'#panes .tok[data-i="{i}"]')
    base = span.evaluate("(s) => s.className.replace(/ (drop|cand)/g, '')")
    span.evaluate("(s, c) => { s.className = c; }", base)
    plain = span.screenshot()
    span.evaluate("(s, c) => { s.className = c + ' drop'; }", base)
    assert span.evaluate("(s) => getComputedStyle(s).outlineStyle") == "solid"
    marked = span.screenshot()

    def inside(png: bytes) -> bytes:  # the glyph area: the box less a 2 px rim for anti-aliasing
        with Image.open(io.BytesIO(png)) as img:
            w, h = img.size
            return img.convert("RGB").crop((2, 2, w - 2, h - 2)).tobytes()

    assert inside(marked) == inside(plain)  # the frame lies outside: no character is covered


@pytest.mark.parametrize("width", [390, 1024, 1400])
def test_layout_fits_the_screen(page: Any, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    score_text(page, TEXT)
    over = page.evaluate(
        """(w) => {
          // Wide content inside its own scroll box (the numbers table) does not move the page.
          const clipped = (e) => {
            for (let p = e.parentElement; p && p.tagName !== 'MAIN'; p = p.parentElement) {
              if (getComputedStyle(p).overflowX !== 'visible') return true;
            }
            return false;
          };
          return [...document.querySelectorAll('main *')]
            .filter((e) => e.offsetParent !== null && !clipped(e)
              && e.getBoundingClientRect().right > w + 0.5)
            .map((e) => `${e.tagName}#${e.id}.${e.className}`);
        }""",
        width,
    )
    assert over == []
    assert page.evaluate("document.querySelector('main').scrollWidth") <= width
    if width == 390:  # one column: the results sit under the controls
        box = page.locator(".inspect-results").bounding_box()
        controls = page.locator(".inspect-controls").bounding_box()
        assert box is not None and controls is not None and box["y"] > controls["y"]
    screenshot(page, f"inspect_{width}")


def test_on_a_phone_the_tokens_stay_in_view_while_a_slider_moves(page: Any) -> None:
    """At 390 px the policy panel is docked at the foot of the screen (shown on request), so the
    tokens it re-marks stay in view above it."""
    page.set_viewport_size({"width": 390, "height": 844})
    score_text(page, TEXT * 3)
    assert not page.locator("#quantile").is_visible()  # docked and folded: one line
    page.click("#policy-toggle")
    assert page.get_attribute("#policy-toggle", "aria-expanded") == "true"
    page.locator("#panes .tokens").scroll_into_view_if_needed()
    slider = page.locator("#quantile")
    slider.scroll_into_view_if_needed()  # inside the docked panel: the page does not move
    marks = page.evaluate("document.querySelectorAll('#panes .tok.cand, #panes .tok.drop').length")
    set_slider = "(v) => { const s = document.getElementById('quantile'); s.value = v;"
    page.evaluate(set_slider + " s.dispatchEvent(new Event('input', {bubbles: true})); }", "0.9")
    page.wait_for_function(
        f"document.querySelectorAll('#panes .tok.cand, #panes .tok.drop').length > {marks}"
    )
    panel = page.locator("#policy").bounding_box()
    box = page.locator("#panes .tokens").bounding_box()
    assert panel is not None and box is not None
    assert slider.is_visible() and panel["y"] + panel["height"] <= 844 + 0.5
    # Some of the tokens are on screen above the panel, and it is they that the point hits.
    visible_top = max(box["y"], 0)
    assert visible_top + 20 < panel["y"], (box, panel)
    # What the reader sees: the screen, not the whole page (the panel is fixed to the screen).
    page.screenshot(path=str(ARTIFACTS / "inspect_phone_policy.png"))
    hit = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('.tokens') !== null",
        [box["x"] + 30, visible_top + 12],
    )
    assert hit, (box, panel)
    screenshot(page, "inspect_phone_policy")
