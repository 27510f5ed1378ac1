"""The Inspect page in headless Chromium with the tiny model: scoring, marks = select_drops,
tooltips, compare, export, and user text that never runs as code."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from browser_utils import browser_page, images_settled, live_server, screenshot
from waiting import PATIENCE_MS, PATIENCE_S, wait_sync

import entrodrop
from app.main import create_app
from app.settings import Settings
from entrodrop import EntroDropConfig, select_drops

pytestmark = pytest.mark.browser

TEXT = (
    "def mean(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total / len(xs)\n\n"
    "Entropy-guided token dropout masks the predictable tokens of a small domain corpus.\n"
)


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("browser-home")
    shutil.copytree(tiny_model_dir, home / "runs" / "r-tiny" / "model")
    with live_server(create_app(Settings(home=home, model=str(tiny_model_dir)))) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[tuple[Any, list[str]]]:
    """One Chromium page for the module, with the uncaught script errors it has seen."""
    errors: list[str] = []
    with browser_page() as page:
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page, errors


@pytest.fixture
def page(browser: tuple[Any, list[str]], server: str) -> Iterator[Any]:
    """The Inspect page, loaded fresh, with the model ready; fails the test on a script error."""
    tab, errors = browser
    errors.clear()
    tab.goto(server + "/")
    tab.wait_for_function(
        "document.getElementById('model-status').dataset.state === 'ready'", timeout=PATIENCE_MS
    )
    yield tab
    assert not errors, errors


def score_text(page: Any, text: str) -> None:
    before = page.evaluate("window.EntroInspect.state.renderCount")
    page.fill("#text", text)
    page.click("#score-btn")
    page.wait_for_function(f"window.EntroInspect.state.renderCount > {before}", timeout=PATIENCE_MS)


def page_marks(page: Any, pane: int = 0) -> tuple[list[int], list[int]]:
    """(dropped, kept candidates) token indices as the page shows them."""
    found = page.evaluate(
        """(pane) => {
          const box = document.querySelector(`.pane[data-pane="${pane}"]`);
          const idx = (sel) => [...box.querySelectorAll(sel)].map((s) => Number(s.dataset.i));
          return [idx(".tok.drop"), idx(".tok.cand")];
        }""",
        pane,
    )
    return found[0], found[1]


def library(entropies: list[float | None], policy: dict[str, Any], progress: float) -> list[int]:
    config = EntroDropConfig(**policy)
    ent = torch.tensor([[math.nan if e is None else e for e in entropies]], dtype=torch.float32)
    mask = select_drops(ent, config, progress, generator=torch.Generator().manual_seed(config.seed))
    return [i for i, d in enumerate(mask[0].tolist()) if d]


def current(page: Any) -> tuple[list[float | None], dict[str, Any], float]:
    entropies = page.evaluate("window.EntroInspect.state.result.panes[0].entropies")
    policy = page.evaluate("window.EntroInspect.currentPolicy()")
    config = {k: v for k, v in policy["config"].items() if v is not None}
    return entropies, config, policy["progress"]


def set_range(page: Any, selector: str, value: float) -> None:
    page.fill(selector, str(value))  # fires `input`, like dragging the slider


def test_score_then_sliders_move_the_marks_exactly_as_the_library(page: Any) -> None:
    score_text(page, TEXT)
    tokens = page.locator("#panes .tok")
    assert tokens.count() == page.evaluate(
        "window.EntroInspect.state.result.panes[0].score.n_tokens"
    )
    # Whitespace and newlines are kept: the token view reads back as the text.
    shown = page.evaluate("[...document.querySelectorAll('#panes .tok')].map((s) => s.textContent)")
    assert "".join(shown) == TEXT
    assert (
        page.evaluate("getComputedStyle(document.querySelector('.tokens')).whiteSpace")
        == "pre-wrap"
    )

    entropies, config, progress = current(page)
    dropped, kept = page_marks(page)
    assert dropped == library(entropies, config, progress) and dropped
    assert kept and not set(kept) & set(dropped)

    set_range(page, "#progress", 0.1)  # early in training: the sigmoid drops almost nothing
    entropies, config, progress = current(page)
    early, _ = page_marks(page)
    assert progress == 0.1 and early == library(entropies, config, progress)
    assert len(early) < len(dropped)

    set_range(page, "#progress", 0.9)
    set_range(page, "#quantile", 0.8)
    page.fill("#seed", "7")
    page.wait_for_function("window.EntroInspect.currentPolicy().config.seed === 7")
    page.wait_for_function(
        "window.EntroInspect.state.result.panes[0].u !== null && "
        "document.querySelectorAll('.tok.drop').length > 0"
    )

    def marks_match_the_library() -> bool:
        entropies, config, progress = current(page)
        return page_marks(page)[0] == library(entropies, config, progress)

    # The seed's draws arrive from /api/draws: wait for the marks they give, not for a time.
    wait_sync(marks_match_the_library, PATIENCE_S, "the marks of seed 7")
    entropies, config, progress = current(page)
    assert config["seed"] == 7 and config["quantile"] == 0.8
    assert page_marks(page)[0] == library(entropies, config, progress)

    page.check('input[name="selection"][value="threshold"]')
    page.select_option("#schedule", "linear")
    entropies, config, progress = current(page)
    assert config["selection"] == "threshold"
    assert page_marks(page)[0] == library(entropies, config, progress)
    # The summary counts what the marks show.
    n_dropped = len(page_marks(page)[0])
    assert f"({n_dropped})" in page.inner_text('#summary td[data-field="dropped"]')
    screenshot(page, "inspect_tiny")
    page.check('input[name="selection"][value="quantile"]')
    page.fill("#seed", "0")
    page.select_option("#schedule", "sigmoid")
    set_range(page, "#quantile", 0.5)
    set_range(page, "#progress", 1.0)


def test_js_policy_equals_select_drops_on_random_configs(page: Any, server: str) -> None:
    score_text(page, TEXT)
    entropies = page.evaluate("window.EntroInspect.state.result.panes[0].entropies")
    rng = random.Random(0)
    cases = []
    for _ in range(60):
        selection = rng.choice(["quantile", "threshold"])
        config = {
            "selection": selection,
            "quantile": round(rng.uniform(0.01, 0.99), 2),
            "threshold": round(rng.uniform(5.9, 6.0), 4) if selection == "threshold" else None,
            "rate_max": round(rng.random(), 2),
            "schedule": rng.choice(["sigmoid", "linear", "cosine", "constant"]),
            "steepness": rng.choice([1.0, 10.0, 37.5, 1000.0]),
            "midpoint": round(rng.random(), 2),
            "seed": rng.randrange(0, 2**31),
        }
        cases.append({"config": config, "progress": round(rng.random(), 2)})
    got = page.evaluate(
        """async ([entropies, cases]) => {
          const out = [];
          for (const c of cases) {
            const res = await fetch(`/api/draws?n=${entropies.length}&seed=${c.config.seed}`);
            const u = (await res.json()).u;
            const sel = EntroPolicy.selectDrops(entropies, u, c.config, c.progress);
            out.push([...sel.dropped.keys()].filter((i) => sel.dropped[i]));
          }
          return out;
        }""",
        [entropies, cases],
    )
    for case, dropped in zip(cases, got, strict=True):
        config = {k: v for k, v in case["config"].items() if v is not None}
        assert dropped == library(entropies, config, case["progress"]), case


def test_tooltip_on_hover_and_keyboard(page: Any) -> None:
    score_text(page, TEXT)
    page.hover('#panes .tok[data-i="3"]')
    tip = page.locator("#tip")
    assert tip.is_visible()
    text = tip.inner_text()
    for word in ("id", "entropy", "surprisal", "probability", "rank", "top 5 predictions"):
        assert word in text
    page.focus('#panes .tok[data-i="0"]')
    assert "first token" in tip.inner_text()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.i") == "2"
    assert page.locator("#tip dd").first.inner_text() == "2"
    page.keyboard.press("Escape")
    assert not tip.is_visible()


def test_user_text_never_runs(page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)"> & "quotes"\n'
    score_text(page, evil)
    page.hover("#panes .tok >> nth=2")
    page.wait_for_selector("#tip .tip-token")  # the hover handler ran: the tooltip shows the token
    images_settled(page)  # and any image the text could have injected has fired its onerror
    assert dialogs == []
    assert page.locator("#panes img, #panes script, #tip img").count() == 0
    shown = page.evaluate("[...document.querySelectorAll('#panes .tok')].map((s) => s.textContent)")
    assert "".join(shown) == evil


def test_compare_and_export(page: Any, tmp_path: Path) -> None:
    page.fill("#text", TEXT)
    page.check("#compare-on")
    page.select_option("#model-b", "run:r-tiny")
    score_text(page, TEXT)
    assert page.locator(".pane").count() == 2
    assert page.locator('input[name="view"][value="delta"]').is_enabled()
    page.check('input[name="view"][value="delta"]')
    assert page.locator(".pane").count() == 1
    assert "difference" in page.inner_text(".pane-head")
    with page.expect_download() as info:
        page.click("#export-csv")
    path = tmp_path / "tokens.csv"
    info.value.save_as(path)
    lines = path.read_text().splitlines(keepends=True)
    head = [r for r in csv.reader(lines) if r and r[0].startswith("# ")]
    assert dict(head)["# policy"] and "quantile" in json.loads(dict(head)["# policy"])
    body = "".join(
        line for line in lines if not line.startswith('"# ') and not line.startswith("# ")
    )
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    n = page.evaluate("window.EntroInspect.state.result.panes[0].score.n_tokens")
    assert len(rows) == n and "".join(r["text"] for r in rows) == TEXT
    assert {"entropy", "dropped", "entropy_b", "delta", "alt1_text", "alt5_prob"} <= set(rows[0])
    assert rows[1]["alt1_text"] and float(rows[1]["alt1_prob"]) > 0
    assert all(float(r["delta"]) == 0.0 for r in rows[1:])  # the run holds the same weights
    with page.expect_download() as info:
        page.click("#export-json")
    assert '"tokens"' in Path(info.value.path()).read_text()
    page.check('input[name="view"][value="side"]')
    page.uncheck("#compare-on")


def test_page_works_while_the_model_loads(
    tiny_model_dir: Path,
    tmp_path: Path,
    browser: tuple[Any, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tab = browser[0]
    release = threading.Event()
    real_load = entrodrop.load
    monkeypatch.setattr(
        entrodrop, "load", lambda spec, **kw: release.wait(PATIENCE_S) and real_load(spec, **kw)
    )
    app = create_app(Settings(home=tmp_path, model=str(tiny_model_dir)))
    with live_server(app) as url:
        tab.goto(url + "/")
        assert tab.locator("#loading-note").is_visible()
        tab.wait_for_function("document.getElementById('model-status').dataset.state === 'loading'")
        tab.fill("#text", "hello world")
        tab.click("#score-btn")
        tab.wait_for_function(
            "document.getElementById('score-status').textContent.includes('retrying')"
        )
        release.set()
        tab.wait_for_selector("#results[data-rendered]", timeout=PATIENCE_MS)
        assert not tab.locator("#loading-note").is_visible()


def test_model_query_parameter_preselects_the_checkpoint(
    browser: tuple[Any, list[str]], server: str
) -> None:
    """The run page links to /?model=run:<id>; the page opens with that checkpoint chosen."""
    tab, errors = browser
    errors.clear()
    tab.goto(server + "/?model=run:r-tiny")
    assert tab.eval_on_selector("#model", "s => s.value") == "run:r-tiny"
    tab.goto(server + "/?model=/some/folder")
    assert tab.eval_on_selector("#model", "s => s.value") == "__folder__"
    assert tab.eval_on_selector("#model-folder", "i => i.value") == "/some/folder"
    assert tab.eval_on_selector("#model-folder", "i => !i.hidden")
    assert not errors, errors
