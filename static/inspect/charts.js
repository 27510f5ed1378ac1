/* The Inspect page's Plotly charts: entropy histogram and entropy per position (with the cut
   tau), and the drop-rate schedule r(s). Plotly is the global from /vendor/plotly.min.js. */
import { dropRate } from "./policy.js";

const PANE_COLOURS = ["#2f5fd0", "#d0662f"];
const FONT = { family: "system-ui, sans-serif", size: 12 };
const CONFIG = { displaylogo: false, responsive: true,
  modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"] };

function cutShapes(result, axis) {
  const shapes = [];
  result.panes.forEach((pane, k) => {
    if (!pane.sel || !Number.isFinite(pane.sel.tau)) return;
    const line = { color: PANE_COLOURS[k], width: 2, dash: "dash" };
    const tau = pane.sel.tau;
    shapes.push(axis === "x"
      ? { type: "line", xref: "x", yref: "paper", x0: tau, x1: tau, y0: 0, y1: 1, line: line }
      : { type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: tau, y1: tau, line: line });
  });
  return shapes;
}

// The legend sits at the foot of the figure, under the x-axis title: Plotly grows the bottom
// margin to fit it however many rows it wraps to, so it covers neither the titles nor the plot.
function layout(title, xTitle, yTitle, showLegend, shapes) {
  return { title: { text: title, font: FONT }, font: FONT, height: 280 + (showLegend ? 40 : 0),
    barmode: "overlay", margin: { l: 50, r: 10, t: 40, b: 40 }, showlegend: showLegend, shapes: shapes,
    // automargin: long tick labels (5.9445) push the axis titles out instead of under them.
    xaxis: { title: { text: xTitle, standoff: 6 }, automargin: true },
    yaxis: { title: { text: yTitle, standoff: 6 }, automargin: true },
    legend: { orientation: "h", x: 0, xanchor: "left", yref: "container", y: 0, yanchor: "bottom" } };
}

// Past this many tokens the raw entropies are noise to the eye: a rolling mean carries the curve.
const SMOOTH_FROM = 100;

/** The window of the rolling mean for n tokens: about 1/40 of the text, at least 5 tokens. */
export function rollingWindow(n) {
  return Math.max(5, Math.round(n / 40));
}

/** Centred rolling mean over `w` values, skipping nulls (the first token has no entropy). */
export function rollingMean(ys, w) {
  const half = Math.floor(w / 2);
  let sum = 0, count = 0, lo = 0, hi = -1;
  return ys.map((_, i) => {
    while (hi < Math.min(ys.length - 1, i + half)) {
      hi += 1;
      if (ys[hi] !== null) { sum += ys[hi]; count += 1; }
    }
    while (lo < i - half) {
      if (ys[lo] !== null) { sum -= ys[lo]; count -= 1; }
      lo += 1;
    }
    return count ? sum / count : null;
  });
}

function alpha(hex, a) {
  const v = parseInt(hex.slice(1), 16);
  return `rgba(${(v >> 16) & 255},${(v >> 8) & 255},${v & 255},${a})`;
}

// One series per position: the raw values as a line (faint under a rolling mean on long texts).
function positionTraces(ys, name, colour, showLegend) {
  const x = ys.map((_, i) => i);
  if (ys.length <= SMOOTH_FROM) {
    return [{ type: "scattergl", mode: "lines", x, y: ys, name, line: { color: colour, width: 1 } }];
  }
  const w = rollingWindow(ys.length);
  return [
    { type: "scattergl", mode: "lines", x, y: ys, name: `${name}: each token`, showlegend: showLegend,
      line: { color: alpha(colour, 0.22), width: 1 }, meta: { raw: true } },
    { type: "scattergl", mode: "lines", x, y: rollingMean(ys, w), name: `${name}: mean of ${w} tokens`,
      showlegend: showLegend, line: { color: colour, width: 2 }, meta: { window: w } },
  ];
}

/** Draw both result charts from scratch (after a score or a change of view). */
export function drawCharts(result, showDelta) {
  if (!window.Plotly) return;
  const compare = result.mode === "compare";
  const values = result.panes.map((pane) => pane.entropies.filter((e) => e !== null));
  // Two models share one set of bins, or their bars could not be compared.
  const hi = Math.max(1e-6, ...values.map((v) => v.reduce((a, b) => Math.max(a, b), 0)));
  const xbins = compare ? { start: 0, end: hi * 1.0001, size: hi / 60 } : undefined;
  const hist = result.panes.map((pane, k) => ({
    type: "histogram", x: values[k], name: pane.label, nbinsx: 60, xbins: xbins,
    marker: { color: PANE_COLOURS[k] }, opacity: compare ? 0.55 : 0.85,
  }));
  Plotly.newPlot("hist-chart", hist, layout("Token entropies (dashed: the cut τ)", "entropy (nats)",
    "tokens", compare, cutShapes(result, "x")), CONFIG);
  const long = result.panes[0].entropies.length > SMOOTH_FROM;
  if (showDelta) {
    const traces = positionTraces(result.delta, "B − A", "#6a3d9a", long);
    Plotly.newPlot("pos-chart", traces, layout("Entropy difference B − A per position",
      "token position", "Δ entropy (nats)", long, []), CONFIG);
    return;
  }
  const lines = result.panes.flatMap((pane, k) => positionTraces(pane.entropies, pane.label, PANE_COLOURS[k],
    compare || long));
  Plotly.newPlot("pos-chart", lines, layout("Entropy per position (dashed: τ)", "token position",
    "entropy (nats)", compare || long, cutShapes(result, "y")), CONFIG);
}

/** Move the cut lines after a policy change (cheap: a relayout of shapes only). */
export function updateCuts(result, showDelta) {
  if (!window.Plotly || !document.getElementById("hist-chart").data) return;
  Plotly.relayout("hist-chart", { shapes: cutShapes(result, "x") });
  if (!showDelta) Plotly.relayout("pos-chart", { shapes: cutShapes(result, "y") });
}

/** The curriculum r(s) over training with a marker at the current progress. */
export function drawSchedule(policy) {
  if (!window.Plotly) return;
  const s = [];
  const r = [];
  for (let i = 0; i <= 100; i++) {
    s.push(i / 100);
    r.push(dropRate(i / 100, policy.config));
  }
  const now = dropRate(policy.progress, policy.config);
  Plotly.react("schedule-chart", [
    { type: "scatter", mode: "lines", x: s, y: r, line: { color: "#2f5fd0" }, hoverinfo: "x+y" },
    { type: "scatter", mode: "markers", x: [policy.progress], y: [now], hoverinfo: "x+y",
      marker: { size: 10, color: "#c23b22" } },
  ], { title: { text: "drop rate r(s) over training", font: FONT }, font: FONT, height: 170,
    margin: { l: 40, r: 10, t: 30, b: 30 }, showlegend: false,
    xaxis: { range: [0, 1] }, yaxis: { range: [0, 1.02] } }, { displayModeBar: false, responsive: true });
}
