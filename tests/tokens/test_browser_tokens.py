"""The token pages in headless Chromium, on real tiny-model runs (a study of none and entrodrop over
two seeds, following some training tokens too): the run's Tokens view (the slider recolours, hover
and focus show a trajectory, a class filter greys the other tokens and steers the arrows, training
tokens show their drops), the token compare of two runs and of the study's variants, and the pages
at 390 px."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import assert_fits, browser_page, live_server, screenshot
from runs_helpers import wait_sync
from waiting import PATIENCE_MS, PATIENCE_S

from app.main import create_app
from app.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1200)]
# A learning rate high enough that four steps move the tiny model, so the runs differ per token.
TINY = {"max_steps": 4, "seq_len": 32, "batch_size": 2, "eval_every": 2, "max_eval_tokens": 256}
TINY |= {"learning_rate": 3e-3}
ENTRODROP = {"entropy_source": "reference", "drop_mode": "loss"}
SPANS = "#tok-heat .tok"


class Study:
    """A live server holding a finished study: its id and its runs by (variant, seed)."""

    def __init__(self, url: str, study_id: str, runs: dict[tuple[str, int], str]) -> None:
        self.url, self.id, self.runs = url, study_id, runs
        self.b = next(v for v, _ in runs if v != "none")  # the EntroDrop variant's label

    def get(self, path: str, **params: Any) -> Any:
        res = httpx.get(self.url + path, params=params, timeout=PATIENCE_S)
        assert res.status_code == 200, res.text
        return res.json()


@pytest.fixture(scope="module")
def study(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Study]:
    home = tmp_path_factory.mktemp("tokens-home")
    body = {
        "name": "tokens: none vs entrodrop",
        "base": {"model": str(tiny_model_dir), "record_train_tokens": 64, **TINY},
        # Reference entropies: tokens drop from the first steps (online ones wait for a token's
        # second sight, which four steps never give), so the two variants differ per token.
        "variants": [
            "none",
            {"label": "entrodrop-ref", "method": "entrodrop", "entrodrop": ENTRODROP},
        ],
        "seeds": [0, 1],
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENTRODROP_HOME", str(home))  # the training children's, while they run
        app = create_app(Settings(home=home, load_model_on_startup=False))
        app.state.jobs.poll_interval = 0.2
        with live_server(app) as url:
            res = httpx.post(f"{url}/api/studies", json=body, timeout=PATIENCE_S)
            assert res.status_code == 201, res.text
            created = res.json()

            def finished() -> bool:
                status = httpx.get(f"{url}/api/studies/{created['id']}", timeout=PATIENCE_S)
                return bool(status.json()["status"] not in ("queued", "running"))

            wait_sync(finished, PATIENCE_S, "the study's four tiny runs")
            runs = {(r["variant"], int(r["seed"])): r["id"] for r in created["runs"]}
            yield Study(url, created["id"], runs)


@pytest.fixture(scope="module")
def browser() -> Iterator[tuple[Any, list[str]]]:
    errors: list[str] = []
    with browser_page() as page:
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page, errors


@pytest.fixture
def page(browser: tuple[Any, list[str]]) -> Iterator[Any]:
    """The module's page at 1400 px; the test fails on any uncaught script error."""
    tab, errors = browser
    errors.clear()
    tab.set_viewport_size({"width": 1400, "height": 1000})
    yield tab
    assert errors == []


def open_tokens(page: Any, study: Study, run_id: str) -> dict[str, Any]:
    """The run page with its Tokens view drawn; the record as the API gives it."""
    page.goto(f"{study.url}/runs/{run_id}")
    page.locator("#tok-heat[data-step]").wait_for(timeout=PATIENCE_MS)
    return dict(study.get(f"/api/runs/{run_id}/tokens"))


def visible(text: str) -> str:
    """A token's text as the tooltip shows it (static/inspect/view.js visible)."""
    if text == "":
        return "(empty piece)"
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")


def classes(page: Any) -> list[str]:
    return list(page.eval_on_selector_all(SPANS, "spans => spans.map((s) => s.className)"))


def test_the_slider_moves_through_the_evaluations_and_recolours(page: Any, study: Study) -> None:
    view = open_tokens(page, study, study.runs[("none", 0)])
    assert view["steps"] == [0, 2, 4]
    assert page.locator(SPANS).count() == view["n_tokens"]
    assert page.get_attribute("#tok-heat", "data-step") == "4"  # the last evaluation first
    assert "step 4 (evaluation 3 of 3)" in page.text_content("#tok-step-text")
    last = classes(page)
    page.focus("#tok-step")
    page.keyboard.press("Home")  # the slider is a range input: the keyboard moves it
    page.locator('#tok-heat[data-step="0"]').wait_for()
    first = classes(page)
    assert sum(a != b for a, b in zip(first, last, strict=True)) > 0
    assert page.get_attribute("#tok-step", "aria-valuetext") == "step 0"

    page.select_option("#tok-colour", "change_start")  # at step 0 every token's change is 0
    page.locator('#tok-heat[data-mode="change_start"]').wait_for()
    zero = {c for c in classes(page) if c != "tok none"}
    assert len(zero) == 1, zero
    page.click("#tok-play")  # play runs to the last evaluation and stops there
    page.locator('#tok-heat[data-step="4"]').wait_for()
    page.locator("#tok-play", has_text="Play").wait_for()
    assert len(set(classes(page))) > 1
    screenshot(page, "tokens_view")


def test_hover_and_focus_show_a_tokens_trajectory(page: Any, study: Study) -> None:
    view = open_tokens(page, study, study.runs[(study.b, 0)])
    span = page.locator(SPANS).nth(5)
    span.hover()
    tip = page.locator(".tok-tip")
    tip.wait_for()
    assert tip.locator(".tip-token").text_content() == visible(view["tokens"][5])
    path = tip.locator("path.traj-loss").get_attribute("d") or ""
    assert path.startswith("M") and path.count("L") == len(view["steps"]) - 1
    assert tip.locator("circle.traj-dot").count() == len(view["steps"])
    bucket = "low-entropy" if view["low_entropy"][5] else "high-entropy"
    assert bucket in (tip.locator(".tip-class").text_content() or "")
    assert f"{view['start_entropy'][5]:.3f} nats" in (tip.text_content() or "")

    page.focus(f'{SPANS}[data-i="0"]')
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.i") == "1"
    assert tip.locator(".tip-token").text_content() == visible(view["tokens"][1])
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.dataset.i") == str(view["n_tokens"] - 1)
    page.keyboard.press("Escape")
    assert tip.is_hidden()


def test_a_class_filter_shows_one_class_and_the_arrows_follow_it(page: Any, study: Study) -> None:
    view = open_tokens(page, study, study.runs[("none", 1)])
    carto = view["cartography"]
    k = max(
        range(len(carto["classes"])),
        key=lambda c: carto["counts"][carto["classes"][c]["id"]]["all"],
    )
    page.select_option("#tok-filter", str(k))
    page.locator(f'#tok-heat[data-filter="{k}"]').wait_for()
    dim = page.eval_on_selector_all(SPANS, "spans => spans.map((s) => s.classList.contains('dim'))")
    assert dim == [c != k for c in carto["class"]]
    shown = [i for i, c in enumerate(carto["class"]) if c == k]
    page.focus(f'{SPANS}[data-i="{shown[0]}"]')
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.i") == str(shown[1])

    # The cartography table's class names filter too; "every class" shows them all again.
    name = carto["classes"][0]["label"]
    page.click(f'#tok-counts button:text-is("{name}")')
    page.locator('#tok-heat[data-filter="0"]').wait_for()
    page.select_option("#tok-filter", "")
    page.locator('#tok-heat[data-filter="-1"]').wait_for()
    assert page.locator(f"{SPANS}.dim").count() == 0
    rows = page.locator("#tok-counts tbody tr")
    assert rows.count() == len(carto["classes"])
    if carto["top_rebound"]:  # a rebound token, clicked, takes the focus in the heatmap
        first = carto["top_rebound"][0]["index"]
        page.locator("#tok-rebound button.tok-pick").first.click()
        assert page.evaluate("document.activeElement.dataset.i") == str(first)


def test_training_tokens_show_how_often_they_were_dropped(page: Any, study: Study) -> None:
    view = open_tokens(page, study, study.runs[(study.b, 0)])
    train = [s["id"] for s in view["sources"]].index("train")
    followed = [i for i, s in enumerate(view["source"]) if s == train]
    assert followed and view["drops"] is not None
    last = view["drops"][-1]
    assert [i for i, d in enumerate(last) if d is not None] == followed
    assert page.locator(".tok-src").count() == 2  # held-out, then training tokens
    summary = page.locator("#tok-drops .tok-drops-summary").text_content() or ""
    dropped = sum(1 for i in followed if last[i] > 0)
    assert summary.startswith(f"{len(followed)} training tokens followed; {dropped} dropped")
    assert page.locator("#tok-drops tbody tr").count() == min(12, dropped)
    page.focus(f'{SPANS}[data-i="{followed[0]}"]')
    drops = page.locator(".tok-tip dd").filter(has_text="dropped")
    assert drops.count() == 1
    n = last[followed[0]]
    assert ("never dropped" if n == 0 else "dropped ") in (drops.text_content() or "")
    open_tokens(page, study, study.runs[("none", 0)])  # none drops nothing: no drops card
    assert page.locator("#tok-drops").is_hidden()


def test_the_token_compare_of_two_runs(page: Any, study: Study) -> None:
    a, b = study.runs[("none", 0)], study.runs[(study.b, 0)]
    page.goto(f"{study.url}/compare?runs={a},{b}")
    section = page.locator("#token-compare")
    section.locator(".tok-heat[data-shown]").wait_for(timeout=PATIENCE_MS)
    out = study.get("/api/compare/tokens", runs=f"{a},{b}")
    assert section.locator(".tok-heat .tok").count() == out["n_tokens"]
    assert f"over {out['summary']['n']} tokens" in section.locator(".tok-summary").text_content()
    # The tables list the largest differences, b's gains first, each row's b - a as the API has it.
    diffs = [d for d in out["diff"] if d is not None]
    assert min(diffs) < 0 < max(diffs), "the two runs should differ both ways"
    gains = section.locator(".tok-gains tbody tr[data-i]")
    first = int(gains.first.get_attribute("data-i"))
    assert first == out["order"][0] and out["diff"][first] == min(diffs)
    assert float(gains.first.locator("td.diff").text_content()) == pytest.approx(
        min(diffs), abs=1e-3
    )
    losses = section.locator(".tok-losses tbody tr[data-i]")
    assert out["diff"][int(losses.first.get_attribute("data-i"))] == max(diffs)
    assert page.locator("#tc-step option").all_text_contents() == [
        "the last evaluation",
        "step 0",
        "step 2",
        "step 4",
    ]
    page.select_option("#tc-step", "0")  # at step 0 both runs are the starting model
    section.locator('.tok-heat[data-shown$="step 0"]').wait_for()
    assert section.locator(".tok-gains tbody tr[data-i]").count() == 0
    assert section.locator(".tok-gains tbody").text_content() == "No token."
    page.select_option("#tc-step", "")
    section.locator('.tok-heat[data-shown$="step 4"]').wait_for()
    screenshot(page, "token_compare")


def test_the_study_token_compare_marks_consistent_tokens(page: Any, study: Study) -> None:
    page.goto(f"{study.url}/studies/{study.id}")
    section = page.locator("#study-tokens")
    section.locator(".tok-heat[data-shown]").wait_for(timeout=PATIENCE_MS)
    out = study.get(f"/api/studies/{study.id}/tokens")
    assert out["variants"] == ["none", study.b] and out["seeds"] == [0, 1]
    assert page.input_value("#st-a") == "none" and page.input_value("#st-b") == study.b
    assert section.locator(".tok-heat .tok").count() == out["n_tokens"]
    assert section.locator(".tok-heat .tok.cons").count() == out["n_consistent"]
    assert "all 2 seeds" in section.locator(".tok-summary").text_content()
    page.click("#st-swap")
    section.locator(f'.tok-heat[data-shown^="{study.b},none"]').wait_for()
    screenshot(page, "study_token_compare")


def test_the_token_pages_fit_a_phone(browser: tuple[Any, list[str]], study: Study) -> None:
    tab, errors = browser
    errors.clear()
    tab.set_viewport_size({"width": 390, "height": 844})
    open_tokens(tab, study, study.runs[(study.b, 1)])
    tab.locator(f'{SPANS}[data-i="3"]').focus()
    tab.locator(".tok-tip").wait_for()
    assert_fits(tab)
    screenshot(tab, "tokens_view_narrow")
    a, b = study.runs[("none", 1)], study.runs[(study.b, 1)]
    tab.goto(f"{study.url}/compare?runs={a},{b}")
    tab.locator("#token-compare .tok-heat[data-shown]").wait_for(timeout=PATIENCE_MS)
    assert_fits(tab)
    screenshot(tab, "token_compare_narrow")
    tab.goto(f"{study.url}/studies/{study.id}")
    tab.locator("#study-tokens .tok-heat[data-shown]").wait_for(timeout=PATIENCE_MS)
    assert_fits(tab)
    assert errors == []
