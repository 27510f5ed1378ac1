"""Times the Inspect page in headless Chromium with the default model: a long text scored and
rendered, then slider moves re-rendered; saves screenshots (docs/screenshots/inspect.png and
inspect_rank.png).

    .venv/bin/python bench/bench_inspect_page.py [--tokens 5000] [--model default] [--moves 30]

Prints a JSON report and writes it to bench/results/inspect_page.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from entrodrop.paths import dev_model_cache  # noqa: E402

# Reuse the converted default checkpoint the tests use (one per user).
os.environ.setdefault("ENTRODROP_MODEL_CACHE", str(dev_model_cache()))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from browser_utils import browser_page, live_server  # noqa: E402

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402

SCREENSHOT_TEXT = (
    "def mean(values: list[float]) -> float:\n"
    '    """The arithmetic mean of a non-empty list."""\n'
    "    if not values:\n"
    '        raise ValueError("mean of an empty list")\n'
    "    return sum(values) / len(values)\n\n"
    "EntroDrop masks the tokens a model already predicts well, so that repeated epochs over a "
    "small domain corpus keep learning from the tokens that still carry information.\n"
)

# One slider move, timed inside the page. `painted`: the frame that shows the new marks has been
# painted (a task queued from a frame callback registered *before* the input runs right after that
# paint, ahead of the page's own chart update); `settled`: the charts have followed too.
MOVE_JS = """async (value) => {
  const slider = document.getElementById("progress");
  const t0 = performance.now();
  const painted = new Promise((r) => requestAnimationFrame(() => setTimeout(() => r(performance.now() - t0), 0)));
  slider.value = String(value);
  slider.dispatchEvent(new Event("input", { bubbles: true }));
  const handled = performance.now() - t0;
  const paintedMs = await painted;
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return { handled: handled, painted: paintedMs, settled: performance.now() - t0,
           dropped: document.querySelectorAll(".tok.drop").length };
}"""


def long_text(tokenizer: Any, n_tokens: int) -> str:
    """About n_tokens of the Python reference (pydoc_data), cut on the model's own tokens."""
    import pydoc_data.topics

    text = "\n\n".join(str(t) for t in pydoc_data.topics.topics.values())
    ids = tokenizer(text[: n_tokens * 8])["input_ids"][:n_tokens]
    return str(tokenizer.decode(ids))


def cpu_seconds() -> float:
    """CPU time of this process (the server runs in a thread here), immune to other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def score_in_page(page: Any, text: str) -> dict[str, float]:
    before = page.evaluate("window.EntroInspect.state.renderCount")
    page.fill("#text", text)
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    page.click("#score-btn")
    page.wait_for_function(f"window.EntroInspect.state.renderCount > {before}", timeout=600_000)
    # One more frame so that the tokens have been painted, not only inserted.
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))")
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    timings = page.evaluate("window.EntroInspect.state.timings")
    n = page.evaluate("window.EntroInspect.state.result.panes[0].score.n_tokens")
    return {
        "n_tokens": n,
        "wall_s": round(wall, 3),
        "server_cpu_s": round(cpu, 2),
        "request_s": round(timings["scoreMs"] / 1000, 3),
        "render_ms": round(timings["renderMs"], 1),
    }


def rank_screenshot(page: Any, path: Path) -> None:
    """The Python sample (the sample picker scores it) coloured by GLTR rank bucket."""
    before = page.evaluate("window.EntroInspect.state.renderCount")
    page.select_option("#sample", "python")
    page.wait_for_function(f"window.EntroInspect.state.renderCount > {before}", timeout=600_000)
    page.select_option("#colour", "rank")
    page.mouse.move(1, 1)  # no tooltip over the tokens
    page.screenshot(path=str(path), full_page=False)
    page.select_option("#colour", "entropy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--model", default="default")
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "inspect_page.json"
    )
    parser.add_argument(
        "--screenshot", type=Path, default=ROOT / "docs" / "screenshots" / "inspect.png"
    )
    parser.add_argument(
        "--rank-screenshot",
        type=Path,
        default=ROOT / "docs" / "screenshots" / "inspect_rank.png",
        help="the Python sample coloured by GLTR rank bucket (docs/inspect.md)",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="entrodrop-bench-"))
    app = create_app(Settings(home=home, model=args.model))
    report: dict[str, Any] = {"model": args.model, "cpu_count": os.cpu_count()}
    with live_server(app) as url, browser_page() as page:
        t0 = time.perf_counter()
        page.goto(url + "/")
        page.wait_for_function(
            "document.getElementById('model-status').dataset.state === 'ready'", timeout=600_000
        )
        report["model_ready_s"] = round(time.perf_counter() - t0, 2)
        report["load_average_before"] = os.getloadavg()

        # The README screenshot: a short mixed text, a token hovered.
        score_in_page(page, SCREENSHOT_TEXT)
        # Hover the last dropped token, so that the tooltip shows why it was dropped.
        index = page.evaluate(
            "[...document.querySelectorAll('#panes .tok.drop')].map((s) => +s.dataset.i)"
            ".reduce((a, i) => Math.max(a, i), 9)"
        )
        page.hover(f'#panes .tok[data-i="{index}"]')
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.screenshot), full_page=True)
        rank_screenshot(page, args.rank_screenshot)

        if args.tokens > 0:  # --tokens 0: only the screenshot
            tokenizer = app.state.model_service.server_model().tokenizer
            text = long_text(tokenizer, args.tokens)
            report["score"] = score_in_page(page, text)
            moves = [page.evaluate(MOVE_JS, (i % 21) / 20) for i in range(args.moves)]
            report["slider"] = {"moves": len(moves)}
            for key in ("handled", "painted", "settled"):
                values = [m[key] for m in moves]
                report["slider"][f"{key}_ms_median"] = round(statistics.median(values), 1)
                report["slider"][f"{key}_ms_max"] = round(max(values), 1)
            page.screenshot(path=str(args.out.with_suffix(".png")), full_page=False)
        report["load_average_after"] = os.getloadavg()
    if args.tokens > 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
