"""Inspect's compare view and long texts in headless Chromium (tiny model): pane B named by its run's
name on a one-line head (the panes' lines stay level), chart legends clear of the axis titles, a
rolling mean over faint raw values for long texts, and rank colours apart from the drop mark."""

from __future__ import annotations

import colorsys
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_utils import live_server, screenshot
from transformers import AutoTokenizer
from waiting import PATIENCE_MS

from app.main import create_app
from app.runs.storage import RunRecord
from app.settings import Settings

pytestmark = pytest.mark.browser

RUN_NAME = "lr sweep · the best one"
TEXT = (
    "def mean(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total / len(xs)\n\n"
    "Entropy-guided token dropout masks the predictable tokens of a small domain corpus.\n"
)


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose runs folder holds a finished run named in the runs table."""
    home = tmp_path_factory.mktemp("compare-home")
    shutil.copytree(tiny_model_dir, home / "runs" / "r-named" / "model")
    app = create_app(Settings(home=home, model=str(tiny_model_dir)))
    now = time.time()
    record = RunRecord(
        id="r-named", created_at=now, queued_at=now, updated_at=now, status="succeeded",
        config={"method": "entrodrop", "model": "default"}, launcher={}, name=RUN_NAME,
    )  # fmt: skip
    with live_server(app) as url:
        app.state.storage.create_run(record)  # the storage opens with the server
        yield url


def score(page: Any, text: str) -> None:
    before = page.evaluate("window.EntroInspect.state.renderCount")
    page.fill("#text", text)
    page.click("#score-btn")
    page.wait_for_function(f"window.EntroInspect.state.renderCount > {before}", timeout=PATIENCE_MS)


def boxes(page: Any, chart: str, selector: str) -> list[dict[str, float]]:
    return list(
        page.evaluate(
            """([chart, sel]) => [...document.querySelectorAll(`#${chart} ${sel}`)].map((e) => {
                 const r = e.getBoundingClientRect();
                 return { x: r.x, y: r.y, w: r.width, h: r.height };
               }).filter((r) => r.w > 0 && r.h > 0)""",
            [chart, selector],
        )
    )


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def test_compare_names_b_by_its_run_keeps_lines_level_and_legends_clear(page: Any) -> None:
    page.set_viewport_size({"width": 1000, "height": 900})  # two narrow panes side by side
    # The picker groups a run's weights under its name (and what it was).
    group = page.locator('#model-b optgroup[data-run-id="r-named"]')
    assert RUN_NAME in (group.get_attribute("label") or "")
    page.check("#compare-on")
    page.select_option("#model-b", "run:r-named")
    score(page, TEXT)
    heads = page.locator(".pane-head strong")
    assert heads.nth(1).text_content() == f"B: {RUN_NAME}"
    assert "run:r-named" in (page.locator(".pane-head").nth(1).get_attribute("title") or "")
    # One line each: the heads are as tall, and both panes' tokens start at the same height.
    tall = page.evaluate(
        "[...document.querySelectorAll('.pane-head')].map((h) => h.getBoundingClientRect().height)"
    )
    tops = page.evaluate(
        "[...document.querySelectorAll('.pane .tokens')].map((t) => t.getBoundingClientRect().top)"
    )
    assert tall[0] == tall[1] and tops[0] == tops[1], (tall, tops)
    assert page.evaluate("getComputedStyle(document.querySelector('.pane-head')).whiteSpace") == (
        "nowrap"
    )
    for chart in ("hist-chart", "pos-chart"):
        legend = boxes(page, chart, ".legend")
        titles = boxes(page, chart, ":is(.g-xtitle, .g-ytitle, .g-gtitle) text")
        assert legend and len(titles) == 3, (chart, legend, titles)
        assert not any(overlap(legend[0], t) for t in titles), (chart, legend, titles)
        ticks = boxes(page, chart, ":is(.xtick, .ytick) text")
        axis_titles = boxes(page, chart, ":is(.g-xtitle, .g-ytitle) text")
        assert not any(overlap(a, t) for a in axis_titles for t in ticks), chart
    screenshot(page, "inspect_compare")
    page.uncheck("#compare-on")


def text_of(tokens: int, tokenizer: Any) -> str:
    """A text of about `tokens` tokens of the tiny model: code and prose, repeated."""
    text = TEXT
    while len(tokenizer(text)["input_ids"]) < tokens:
        text += TEXT
    ids = tokenizer(text)["input_ids"][:tokens]
    return str(tokenizer.decode(ids, skip_special_tokens=True))


@pytest.mark.parametrize("tokens", [385, 2900])
def test_entropy_per_position_is_a_rolling_mean_over_faint_values(
    page: Any, tiny_model_dir: Path, tokens: int
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    score(page, text_of(tokens, tokenizer))
    n = page.evaluate("window.EntroInspect.state.result.panes[0].score.n_tokens")
    assert abs(n - tokens) < tokens * 0.05, n
    traces = page.evaluate(
        "document.getElementById('pos-chart').data.map((t) => ({name: t.name, colour: "
        "t.line.color, width: t.line.width, meta: t.meta || {}, n: t.y.length}))"
    )
    raw, mean = traces
    assert raw["meta"].get("raw") and raw["colour"].startswith("rgba(") and "0.22)" in raw["colour"]
    assert mean["meta"]["window"] == max(5, math.floor(n / 40 + 0.5)) and mean["width"] == 2
    assert raw["n"] == mean["n"] == n
    assert f"mean of {mean['meta']['window']} tokens" in mean["name"]
    screenshot(page, f"inspect_positions_{tokens}")


def hue(css: str) -> float:
    r, g, b = (int(v) / 255 for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def test_rank_colours_are_not_the_drop_marks_red(page: Any) -> None:
    score(page, TEXT)
    page.select_option("#colour", "rank")
    frame = page.evaluate(
        "(() => { const s = document.createElement('span'); s.className = 'tok drop';"
        "document.querySelector('.tokens').append(s); const c = getComputedStyle(s).outlineColor;"
        "s.remove(); return c; })()"
    )
    backgrounds = [
        page.evaluate(
            "(b) => getComputedStyle(document.querySelector(`#legend .tok.sample.r${b}`))"
            ".backgroundColor",
            b,
        )
        for b in range(4)
    ]
    red = hue(frame)
    for bg in backgrounds:
        gap = min(abs(hue(bg) - red), 360 - abs(hue(bg) - red))
        assert gap > 20, (bg, frame)  # no rank bucket shares the drop frame's hue
    page.select_option("#colour", "entropy")
