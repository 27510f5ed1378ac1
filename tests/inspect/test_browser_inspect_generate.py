"""Inspect's Generate and Conversation modes in headless Chromium with the tiny chat model:
tokens stream in coloured by entropy, two checkpoints side by side, Stop ends the job at the
server, and a conversation shows its prompt greyed and its answer coloured, re-marked at once."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_utils import assert_fits, live_server, screenshot
from data_files import CONVERSATION, variant
from waiting import PATIENCE_MS, PATIENCE_S, wait_sync

from app.main import create_app
from app.score_job import ScoreJob
from app.settings import Settings

pytestmark = pytest.mark.browser

MAX_NEW = 48  # the server's cap in this module: the page's max_new_tokens input must say it


class TokenGate:
    """While on, holds each generated token until the test lets it go."""

    def __init__(self) -> None:
        self.on = False
        self.permits = threading.Semaphore(0)
        self.jobs: list[ScoreJob] = []
        self.real = ScoreJob.emit

    def __call__(self, job: ScoreJob, event: dict[str, Any]) -> None:
        if self.on and event.get("event") == "token":
            if job not in self.jobs:
                self.jobs.append(job)
            assert self.permits.acquire(timeout=PATIENCE_S)
        self.real(job, event)


@pytest.fixture(scope="module")
def gate() -> Iterator[TokenGate]:
    g = TokenGate()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ScoreJob, "emit", lambda job, event: g(job, event))
        yield g
    g.on = False
    for _ in range(MAX_NEW * 2):  # nothing stays blocked after the module
        g.permits.release()


@pytest.fixture(scope="module")
def copy_dir(tiny_chat_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights in another folder: a second checkpoint that must draw the same tokens."""
    return Path(shutil.copytree(tiny_chat_model_dir, tmp_path_factory.mktemp("copy") / "chat-copy"))


@pytest.fixture(scope="module")
def server(
    tiny_chat_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, gate: TokenGate
) -> Iterator[str]:
    home = tmp_path_factory.mktemp("gen-home")
    settings = Settings(home=home, model=str(tiny_chat_model_dir), max_new_tokens=MAX_NEW)
    with live_server(create_app(settings)) as url:
        yield url


def pick_mode(page: Any, mode: str) -> None:
    page.check(f'input[name="mode"][value="{mode}"]')
    page.wait_for_function(f"document.querySelector('.inspect').dataset.mode === '{mode}'")


def generate_and_wait(page: Any) -> None:
    runs = page.evaluate("window.EntroInspect.gen.runs")
    page.click("#gen-btn")
    page.wait_for_function(f"window.EntroInspect.gen.runs > {runs}", timeout=PATIENCE_MS)


def pane_tokens(page: Any, pane: int) -> list[dict[str, str]]:
    return list(
        page.evaluate(
            """(i) => Array.from(document.querySelectorAll(
                 `#gen-panes .pane[data-pane="${i}"] .tok`))
               .map((s) => ({text: s.textContent, cls: s.className}))""",
            pane,
        )
    )


def test_generation_streams_coloured_tokens_with_the_servers_bounds(page: Any) -> None:
    pick_mode(page, "generate")
    assert page.get_attribute("#gen-max_new_tokens", "max") == str(MAX_NEW)
    assert page.input_value("#gen-max_new_tokens") == str(MAX_NEW)  # the default, capped here
    assert not page.locator("#policy").is_visible() and not page.locator("#text").is_visible()
    page.fill("#gen-prompt", "def add(a, b):")
    page.fill("#gen-max_new_tokens", "20")
    generate_and_wait(page)
    tokens = pane_tokens(page, 0)
    assert len(tokens) == 20
    colours = {c for t in tokens for c in t["cls"].split() if c[0] == "c" and c[1:].isdigit()}
    assert colours, "every generated token has an entropy colour bin"
    status = page.inner_text("#gen-panes .pane-status")
    assert "20 tokens in" in status and "max new tokens reached" in status
    result = page.evaluate("window.EntroInspect.gen.panes[0].score")
    assert "".join(t["text"] for t in tokens) == result["text"]
    page.hover('#gen-panes .tok[data-i="3"]')
    tip = page.inner_text("#tip")
    assert "generated; drawn from 0.000 nats" in tip and "entropy" in tip  # greedy: 0 after T
    # Over the server's cap: said before sending, in the input's own bounds.
    page.fill("#gen-max_new_tokens", str(MAX_NEW + 1))
    page.click("#gen-btn")
    assert "max new tokens" in page.inner_text("#gen-status")


def test_side_by_side_draws_the_same_tokens_from_the_same_seed(page: Any, copy_dir: Path) -> None:
    pick_mode(page, "generate")
    page.fill("#gen-prompt", "Once upon a time")
    page.uncheck("#gen-greedy")
    page.fill("#gen-seed", "7")
    page.fill("#gen-max_new_tokens", "16")
    page.check("#compare-on")
    page.select_option("#model-b", "__folder__")
    page.fill("#model-b-folder", str(copy_dir))
    generate_and_wait(page)
    a, b = pane_tokens(page, 0), pane_tokens(page, 1)
    assert len(a) == 16 and a == b  # the same weights, prompt and seed: the same tokens, colours
    heads = page.locator("#gen-panes .pane-head strong").all_inner_texts()
    assert heads[0].startswith("A: ") and heads[1] == "B: chat-copy"
    boxes = [page.locator(f'#gen-panes .pane[data-pane="{i}"]').bounding_box() for i in (0, 1)]
    assert boxes[0]["x"] < boxes[1]["x"] and boxes[0]["y"] == boxes[1]["y"]  # two columns
    screenshot(page, "inspect_generate_1400")
    page.set_viewport_size({"width": 390, "height": 844})
    boxes = [page.locator(f'#gen-panes .pane[data-pane="{i}"]').bounding_box() for i in (0, 1)]
    assert boxes[1]["y"] > boxes[0]["y"] + boxes[0]["height"] - 1  # stacked on a phone
    assert_fits(page)
    screenshot(page, "inspect_generate_390")


def test_stop_ends_the_generation_at_the_server(page: Any, gate: TokenGate) -> None:
    pick_mode(page, "generate")
    page.fill("#gen-prompt", "Tell me a story")
    page.fill("#gen-max_new_tokens", str(MAX_NEW))
    n_jobs = len(gate.jobs)
    gate.on = True
    try:
        page.click("#gen-btn")
        wait_sync(lambda: len(gate.jobs) > n_jobs, what="the generation to start")
        job = gate.jobs[-1]
        for _ in range(3):
            gate.permits.release()
        page.wait_for_function("document.querySelectorAll('#gen-panes .tok').length >= 3")
        assert page.locator("#gen-stop").is_visible()
        page.click("#gen-stop")
        page.wait_for_function("!window.EntroInspect.gen.running")
        wait_sync(lambda: job.cancelled, what="the server to cancel the closed generation")
    finally:
        gate.on = False
        gate.permits.release()
    assert "Stopped after" in page.inner_text("#gen-panes .pane-status")
    assert "Stopped" in page.inner_text("#gen-status")
    assert len(pane_tokens(page, 0)) < MAX_NEW
    assert not page.locator("#gen-stop").is_visible()
    generate_and_wait(page)  # the worker is free again
    assert len(pane_tokens(page, 0)) == MAX_NEW


def score_conversation(page: Any) -> None:
    before = page.evaluate("window.EntroInspect.state.renderCount")
    page.click("#score-btn")
    page.wait_for_function(f"window.EntroInspect.state.renderCount > {before}", timeout=PATIENCE_MS)


def spans(page: Any) -> list[dict[str, Any]]:
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('#panes .tok'))
                 .map((s) => ({text: s.textContent, cls: s.className.split(' ')}))"""
        )
    )


def test_conversation_greys_the_prompt_and_colours_the_answer(page: Any) -> None:
    pick_mode(page, "conversation")
    assert page.locator("#conv-text").is_visible() and not page.locator("#text").is_visible()
    blocks = "\n\n".join(f"{m['role']}: {m['content']}" for m in CONVERSATION)
    page.fill("#conv-text", blocks)
    score_conversation(page)
    toks = spans(page)
    grey = [t for t in toks if "untrained" in t["cls"]]
    answer = "".join(t["text"] for t in toks if "untrained" not in t["cls"])
    assert answer.startswith(CONVERSATION[2]["content"])
    assert CONVERSATION[1]["content"] in "".join(t["text"] for t in grey)
    assert all(
        any(c[0] == "c" and c[1:].isdigit() for c in t["cls"])
        for t in toks
        if "untrained" not in t["cls"]
    )
    # The policy re-marks at once, never a prompt token (the drop scope is the answers).
    page.fill("#rate-max", "1")
    page.dispatch_event("#rate-max", "input")
    page.fill("#quantile", "0.9")
    page.dispatch_event("#quantile", "input")
    toks = spans(page)
    dropped = [t for t in toks if "drop" in t["cls"]]
    assert dropped and not any("untrained" in t["cls"] for t in dropped)
    assert "carry loss" in page.inner_text("#summary")
    status = page.inner_text("#score-status")
    assert "Scored" in status and " s" in status
    screenshot(page, "inspect_conversation_1400")
    # The same conversation as chat JSON gives the same tokens.
    page.fill("#conv-text", json.dumps(CONVERSATION))
    score_conversation(page)
    assert [t["text"] for t in spans(page)] == [t["text"] for t in toks]


def test_an_instruction_file_pages_through_its_examples(page: Any, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: it all fits
    pick_mode(page, "conversation")
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(variant("alpaca", i)) + "\n" for i in range(3)))
    before = page.evaluate("window.EntroInspect.state.renderCount")
    page.set_input_files("#conv-file", str(path))
    page.wait_for_function(f"window.EntroInspect.state.renderCount > {before}", timeout=PATIENCE_MS)
    assert page.inner_text("#conv-where") == "1 / 3"
    assert "alpaca" in page.inner_text("#conv-info")
    before = page.evaluate("window.EntroInspect.state.renderCount")
    page.click("#conv-next")
    page.wait_for_function(f"window.EntroInspect.state.renderCount > {before}", timeout=PATIENCE_MS)
    assert page.inner_text("#conv-where") == "2 / 3"
    assert "container 1." in page.input_value("#conv-text")
    assert any("untrained" in t["cls"] for t in spans(page))
    assert_fits(page)
    screenshot(page, "inspect_conversation_390")


def test_a_score_behind_a_generation_says_its_wait_apart(page: Any, gate: TokenGate) -> None:
    """Scoring progress and time: queued behind another job, the page says so, and the result
    gives the scoring time and the wait apart (issue 26 item 2)."""
    pick_mode(page, "generate")
    page.fill("#gen-prompt", "Tell me a story")
    n_jobs = len(gate.jobs)
    gate.on = True
    try:
        page.click("#gen-btn")
        wait_sync(lambda: len(gate.jobs) > n_jobs, what="the generation to hold the worker")
        pick_mode(page, "conversation")
        page.fill("#conv-text", json.dumps(CONVERSATION))
        before = page.evaluate("window.EntroInspect.state.renderCount")
        page.click("#score-btn")
        page.wait_for_function(
            "document.getElementById('score-status').textContent.includes('1 scoring job ahead')"
        )
    finally:
        gate.on = False
        gate.permits.release()  # the held token goes; the rest of the generation runs free
    page.wait_for_function(f"window.EntroInspect.state.renderCount > {before}", timeout=PATIENCE_MS)
    status = page.inner_text("#score-status")
    assert re.search(r"Scored \d+ tokens in \d+\.\d\d s \(waited \d+\.\d+ s\)", status), status
    page.wait_for_function("!window.EntroInspect.gen.running")
