"""Static line charts as inline SVG: a study's curves (mean over seeds and 95% band per variant).

The study report must open offline and make no request; Plotly's bundle (4.8 MB) carries dozens
of http(s) URLs (licence comments, map tile servers), so the report draws its few charts here:
a few kilobytes each, with a native tooltip on every point. Inline ``<svg>`` in HTML needs no
namespace URL either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 760, 340
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44
# Ten distinguishable hues, then their lighter twins (matplotlib's tab20 order).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def dash(variant: str) -> str:
    """EntroDrop solid, its random ablation dash-dotted, every other baseline dashed."""
    if variant.startswith("entrodrop"):
        return ""
    return "6 3 2 3" if variant.startswith("random") else "6 4"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values (1, 2 or 5 x 10^k apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


class Frame:
    """The plot area and its data ranges: data coordinates to SVG pixels."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.x0, self.x1 = min(xs), max(xs)
        if self.x1 == self.x0:
            self.x1 = self.x0 + 1.0
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.05 or 0.05
        self.y0, self.y1 = lo - pad, hi + pad

    def x(self, v: float) -> float:
        return LEFT + (v - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return TOP + (self.y1 - v) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)


def _points(frame: Frame, xs: Sequence[float], ys: Sequence[float]) -> str:
    return " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in zip(xs, ys, strict=True))


def _axes(frame: Frame, x_title: str, y_title: str) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{right - LEFT}" height="{bottom - TOP}" '
           'fill="none" stroke="#bbb"/>']  # fmt: skip
    for v in nice_ticks(frame.y0, frame.y1):
        y = frame.y(v)
        out.append(f'<line x1="{LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.4g}</text>')
    for v in nice_ticks(frame.x0, frame.x1, 6):
        x = frame.x(v)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="#888"/>'
        )
        out.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{v:.4g}</text>')
    out.append(f'<text x="{(LEFT + right) / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
               f"{escape(x_title)}</text>")  # fmt: skip
    out.append(f'<text transform="translate(14 {(TOP + bottom) / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_title)}</text>')  # fmt: skip
    return out


def _series(frame: Frame, i: int, variant: str, c: Mapping[str, list[Any]], xs: list[float]) -> str:
    """One variant: its 95% band, its mean line and a point with a tooltip per evaluation."""
    hue = colour(i)
    band = _points(frame, xs, c["hi"]) + " " + _points(frame, xs[::-1], c["lo"][::-1])
    parts = [f'<g class="series" data-variant="{escape(variant)}">']
    parts.append(f'<polygon points="{band}" fill="{hue}" fill-opacity="0.12" stroke="none"/>')
    dashes = f' stroke-dasharray="{dash(variant)}"' if dash(variant) else ""
    parts.append(f'<polyline points="{_points(frame, xs, c["mean"])}" fill="none" '
                 f'stroke="{hue}" stroke-width="1.8"{dashes}/>')  # fmt: skip
    for x, mean, lo, hi, n in zip(xs, c["mean"], c["lo"], c["hi"], c["n"], strict=True):
        tip = f"{variant}: {mean:.4f} [{lo:.4f}, {hi:.4f}] at {x:g} (n={n})"
        parts.append(f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(mean):.1f}" r="2.6" '
                     f'fill="{hue}"><title>{escape(tip)}</title></circle>')  # fmt: skip
    parts.append("</g>")
    return "".join(parts)


def curve_chart(
    curves: Mapping[str, Mapping[str, list[Any]]], title: str, y_title: str, x_key: str = "epoch"
) -> str:
    """One panel: per variant (in order) the mean curve with its band; '' with no data."""
    drawn = {v: c for v, c in curves.items() if c.get("step")}
    if not drawn:
        return ""
    xs_all = [float(x) for c in drawn.values() for x in c[x_key]]
    ys_all = [float(y) for c in drawn.values() for key in ("lo", "hi") for y in c[key]]
    frame = Frame(xs_all, ys_all)
    body = _axes(frame, x_key, y_title)
    order = list(curves)
    for variant, c in drawn.items():
        body.append(_series(frame, order.index(variant), variant, c, [float(x) for x in c[x_key]]))
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(title)}" font-size="11" font-family="sans-serif">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )
