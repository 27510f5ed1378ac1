"""A study's report: ONE self-contained HTML file to share, that opens offline with no request.

It shows what the study page shows, from the same data (entrodrop.studies.view, or the
dashboard's GET /api/studies/{id}): the verdict, the tables with their 95% intervals, the paired
differences with their readings, the curves (inline SVG, entrodrop.studies.svg), the runs, the
config and the machine. No script, no stylesheet or font from elsewhere, no link to another host.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from entrodrop.studies.reading import stat_text
from entrodrop.studies.svg import colour, curve_chart, dash

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-size: 1.05rem; font-weight: 600; padding: .75rem 1rem; background: #f4f6fb;
           border-left: 4px solid #4263eb; }
.legend { display: flex; flex-wrap: wrap; gap: .25rem 1rem; font-size: 12px; }
.legend svg { vertical-align: middle; }
pre { background: #f7f7f7; padding: .75rem; overflow-x: auto; font-size: 12px; }
.muted { color: #666; }
.scroll { overflow-x: auto; }
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """An HTML table; cells are escaped here, columns in `numeric` right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(c)}</td>' if i in numeric else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'  # a phone scrolls the table, not the page


def summary_table(data: Mapping[str, Any]) -> str:
    outcomes = data["facts"]["outcomes"]
    header = ["variant", "n", *(o["label"] for o in outcomes)]
    rows = [
        [r["variant"], str(r["n"]), *(stat_text(r[o["name"]]) for o in outcomes)]
        for r in data["summary"]
    ]
    return _table(header, rows, set(range(1, len(header))))


def paired_table(data: Mapping[str, Any]) -> str:
    header = ["variant", "vs", "final held-out difference", "CI excludes 0", "reading"]
    rows = [
        [
            r["variant"],
            r["vs_label"],
            stat_text(r["final_heldout_diff"], signed=True),
            "yes" if r["excludes_zero"] else "no",
            r["reading"],
        ]
        for r in data["paired"]
    ]
    return _table(header, rows, {2})


def runs_table(data: Mapping[str, Any]) -> str:
    header = ["run", "variant", "seed", "status", "step", "final held-out loss", "best step"]
    rows = [
        [
            r["id"],
            r["variant"],
            str(r["seed"]),
            r["status"] + (" (stopped early)" if r.get("stopped_early") else ""),
            f"{r.get('step', 0)}/{r.get('total_steps') or '?'}",
            "-" if r.get("final_eval_loss") is None else f"{r['final_eval_loss']:.4f}",
            "-" if r.get("best_step") is None else str(r["best_step"]),
        ]
        for r in data["runs"]
    ]
    return _table(header, rows, {2, 4, 5, 6})


def legend(variants: Sequence[str]) -> str:
    items = []
    for i, v in enumerate(variants):
        dashes = f' stroke-dasharray="{dash(v)}"' if dash(v) else ""
        swatch = (
            f'<svg width="28" height="10" aria-hidden="true"><line x1="0" x2="28" y1="5" y2="5" '
            f'stroke="{colour(i)}" stroke-width="2"{dashes}/></svg>'
        )
        items.append(f"<span>{swatch} {escape(v)}</span>")
    return f'<div class="legend">{"".join(items)}</div>'


def charts(data: Mapping[str, Any]) -> str:
    """One chart per panel of the page, every variant in the study's order, one shared legend."""
    variants = list(data["curves"])
    parts = [legend(variants)]
    labels = data["facts"]["metric_labels"]
    for panel in data["panels"]:
        per_variant = {v: data["curves"][v].get(panel["name"], {}) for v in variants}
        y_title = f"{labels.get(panel['name'], panel['name'])} (nats/token)"
        chart = curve_chart(per_variant, panel["title"], y_title, x_key="step")
        parts.append(f"<h3>{escape(panel['title'])}</h3>")
        parts.append(chart or '<p class="muted">No evaluation yet.</p>')
    return "\n".join(parts)


def machine_text(machine: Mapping[str, Any] | None) -> str:
    """Where the runs ran (the study's record), else the machine that wrote the report."""
    if machine:
        return (
            "<p>The runs ran on:</p><pre>"
            + escape(json.dumps(machine, indent=2), quote=False)
            + "</pre>"
        )
    here = {"platform": platform.platform(), "python": platform.python_version()}
    return (
        '<p class="muted">The study did not record its machine; this report was written on:</p>'
        "<pre>" + escape(json.dumps(here, indent=2), quote=False) + "</pre>"
    )


def report_html(data: Mapping[str, Any]) -> str:
    """The whole report as one HTML document, from a study's page data."""
    created = data.get("created_at")
    when = (
        dt.datetime.fromtimestamp(created, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        if isinstance(created, int | float)
        else "at an unknown time"
    )
    config = json.dumps(data["config"], indent=2)
    title = f"Study {data['name']} ({data['id']})"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">Status {escape(str(data["status"]))}, {data["n_runs"]} runs '
        f"({len(data['variants'])} variants x {len(data['seeds'])} seeds), created {when}. "
        "Outcomes are means over seeds with 95% confidence intervals (Student t); "
        "differences are paired by seed.</p>",
        f'<p class="verdict">{escape(data["verdict"])}</p>',
        "<h2>Summary</h2>",
        summary_table(data),
        "<h2>Paired differences</h2>",
        paired_table(data) if data["paired"] else "<p>No comparison in this study.</p>",
        "<h2>Curves</h2>",
        charts(data),
        "<h2>Runs</h2>",
        runs_table(data),
        "<h2>Config</h2>",
        f"<pre>{escape(config, quote=False)}</pre>",
        "<h2>Machine</h2>",
        machine_text(data.get("machine")),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
