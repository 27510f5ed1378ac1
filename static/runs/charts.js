// The runs pages' curves: one Plotly chart per panel, labels, panels and x-axes from the page's facts.
// Each run's rows carry their attempt: the current attempt is drawn, earlier ones only on request.
// Smoothing never touches a deterministic series (the facts' deterministic_metrics: a formula of
// the step, such as r(s)); exports hold the raw values, with the smoothed ones beside them.

import { $, $$ } from "../common/dom.js";

export const COLORS = ["#2f5fd0", "#e07b1a", "#2a9d55", "#c23b22", "#8a4fc4", "#8c564b", "#d04fa0", "#6b6b70"];
const DASHES = ["solid", "dash", "dot", "dashdot"];
const EARLIER = "#9a9aa2";

export class Series {
  constructor() { this.rows = new Map(); } // `${attempt}|${name}` -> Map(step -> row)
  clear() { this.rows.clear(); }
  add(rows) {
    for (const r of rows) {
      const key = `${r.attempt || 1}|${r.name}`;
      if (!this.rows.has(key)) this.rows.set(key, new Map());
      this.rows.get(key).set(r.step, r);
    }
  }
  attempts() {
    return Array.from(new Set(Array.from(this.rows.keys(), (k) => Number(k.split("|")[0])))).sort((a, b) => a - b);
  }
  // The rows of one metric in one attempt, by step.
  points(name, attempt) {
    const m = this.rows.get(`${attempt}|${name}`);
    if (!m) return [];
    return Array.from(m.values()).sort((a, b) => a.step - b.step);
  }
  // The attempt's first wall-clock time: wall-time axes start at 0 for each attempt.
  startTime(attempt) {
    let t0 = Infinity;
    for (const [key, m] of this.rows) {
      if (Number(key.split("|")[0]) !== attempt) continue;
      for (const r of m.values()) if (r.time !== null && r.time < t0) t0 = r.time;
    }
    return Number.isFinite(t0) ? t0 : 0;
  }
}

// x of one row on the chosen axis; tokens seen = step × the run's tokens per optimizer step.
function xOf(row, axis, run, t0) {
  if (axis === "epoch") return row.epoch;
  if (axis === "tokens") return row.step * (run.tokensPerStep || 1);
  if (axis === "time") return row.time === null ? null : row.time - t0;
  return row.step;
}

// TensorBoard-style exponential moving average, debiased so the first points are not pulled to 0.
function ema(ys, w) {
  let acc = 0, n = 0;
  return ys.map((y) => {
    if (y === null || !Number.isFinite(y)) return null;
    acc = acc * w + (1 - w) * y;
    n += 1;
    return acc / (1 - Math.pow(w, n));
  });
}

// An axis range from the data: a flat or single-point series gets a margin around its value
// (never Plotly's −1…1), and log axes take the range in log10 units.
export function dataRange(values, log) {
  const vs = values.filter((v) => v !== null && Number.isFinite(v) && (!log || v > 0));
  if (!vs.length) return undefined;
  let lo = Math.min(...vs), hi = Math.max(...vs);
  if (log) { lo = Math.log10(lo); hi = Math.log10(hi); }
  const span = hi - lo;
  const pad = span > 0 ? span * 0.06 : Math.abs(hi) * 0.1 || (log ? 0.1 : 1);
  return [lo - pad, hi + pad];
}

// Steps are integers: ticks 1 apart at least, never 2.5 (nor a label repeated by rounding).
function niceStep(span) {
  const raw = Math.max(1, span / 6);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return Math.max(1, (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p);
}

// An x-axis of optimizer steps: whole-number ticks at a round spacing over the data's range.
export function stepAxis(xs) {
  const range = dataRange(xs, false);
  return range ? { range, tick0: 0, dtick: niceStep(range[1] - range[0]), tickformat: "d" } : { tickformat: "d" };
}

function chartOptions() {
  const slider = $("#smoothing");
  return {
    smoothing: slider ? Number(slider.value) : 0,
    log: !!($("#log-scale") || {}).checked,
    axis: ($("#x-axis") || {}).value || "step",
    earlier: !!($("#earlier-attempts") || {}).checked,
  };
}

function tracesFor(panel, runs, compare, facts, opts) {
  const labels = facts.metric_labels;
  const deterministic = new Set(facts.deterministic_metrics || []);
  const traces = [];
  runs.forEach((run, ri) => panel.names.forEach((name, ni) => {
    const attempts = opts.earlier ? run.series.attempts().filter((a) => a <= run.attempt) : [run.attempt];
    for (const attempt of attempts) {
      const rows = run.series.points(name, attempt);
      if (!rows.length) continue;
      const t0 = run.series.startTime(attempt);
      const xs = rows.map((r) => xOf(r, opts.axis, run, t0));
      const ys = rows.map((r) => r.value);
      const current = attempt === run.attempt;
      const color = !current ? EARLIER : compare ? COLORS[ri % COLORS.length] : COLORS[ni % COLORS.length];
      let label = compare ? `${run.label} · ${labels[name] || name}` : labels[name] || name;
      if (!current) label = `attempt ${attempt} · ${label}`;
      const smooth = opts.smoothing > 0 && xs.length > 2 && !deterministic.has(name);
      if (smooth && !compare && current) {
        traces.push({ x: xs, y: ys, mode: "lines", line: { color, width: 1 }, opacity: 0.3,
          showlegend: false, hoverinfo: "skip", meta: { raw: true } });
      }
      traces.push({
        x: xs, y: smooth ? ema(ys, opts.smoothing) : ys, name: label,
        mode: xs.length < 40 ? "lines+markers" : "lines",
        line: { color, width: current ? 2 : 1.5, dash: !current ? "dot" : compare ? DASHES[ni % DASHES.length] : "solid" },
        marker: { size: 5 }, meta: { attempt, run: run.id, metric: name, values: ys, smoothed: smooth },
      });
    }
  }));
  return traces;
}

function layoutFor(panel, traces, compare, opts, axisLabel) {
  const yTitle = panel.y_label ? { title: { text: panel.y_label, standoff: 4 } } : {};
  const log = opts.log && panel.log;
  const xs = traces.flatMap((t) => t.x);
  const ys = traces.flatMap((t) => t.y);
  const xAxis = opts.axis === "step" ? stepAxis(xs) : { range: dataRange(xs, false), tickformat: "~s" };
  const legendRows = compare ? Math.ceil(traces.filter((t) => t.showlegend !== false).length / 2) : 1;
  return {
    height: 270 + (compare ? 18 * Math.max(0, legendRows - 1) : 0),
    margin: { l: 62, r: 15, t: 10, b: 44 },
    xaxis: {
      title: { text: axisLabel, standoff: 4 }, zeroline: false, ...xAxis,
      hoverformat: opts.axis === "epoch" ? ".3~f" : ",~r",
    },
    yaxis: {
      // automargin: long tick labels (0.00025) push the axis title out instead of under it.
      ...yTitle, automargin: true, type: log ? "log" : "linear", zeroline: false, range: dataRange(ys, log),
      // ~g: 0.00025 reads as 0.00025 (not 250µ), 2.5 as 2.5.
      tickformat: "~g", hoverformat: ".4~g", exponentformat: "e",
    },
    // Above the plot, where it pushes the plot down instead of covering the axis titles.
    legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom", font: { size: 11 } },
    showlegend: traces.filter((t) => t.showlegend !== false).length > 1,
    hovermode: "x unified", paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
    font: { family: "system-ui, sans-serif", size: 12 },
  };
}

// runs: [{id, label, series, attempt, tokensPerStep}]; one colour per metric (single run) or per run
// (compare). facts: the page's facts (metric labels, x-axes, deterministic metrics).
export function drawPanels(panels, runs, compare, facts) {
  if (typeof Plotly === "undefined") return;
  const opts = chartOptions();
  const axisLabel = ((facts.x_axes || []).find((a) => a.id === opts.axis) || { label: opts.axis }).label;
  for (const panel of panels) {
    const el = document.getElementById(`chart-${panel.id}`);
    if (!el) continue;
    const traces = tracesFor(panel, runs, compare, facts, opts);
    if (!traces.length) {
      if (el.data) { Plotly.purge(el); el.innerHTML = '<p class="muted chart-empty">No points yet.</p>'; }
      el.dataset.points = "0";
      continue; // keeps the "No points yet." note
    }
    const empty = el.querySelector(".chart-empty");
    if (empty) empty.remove();
    Plotly.react(el, traces, layoutFor(panel, traces, compare, opts, axisLabel), { displaylogo: false, responsive: true });
    el.dataset.points = String(traces.reduce((n, t) => n + (t.showlegend === false ? 0 : t.x.length), 0));
    el.dataset.axis = opts.axis;
    el.dataset.smoothing = String(opts.smoothing);
    el.dataset.attempts = Array.from(new Set(traces.map((t) => t.meta && t.meta.attempt))).filter(Boolean).join(",");
    syncHover(el);
  }
}

// Hovering one chart shows the same x on every other chart of the page.
let syncing = false;
function syncHover(el) {
  if (el.dataset.synced) return;
  el.dataset.synced = "1";
  el.on("plotly_hover", (ev) => {
    if (syncing || !ev.points || !ev.points.length) return;
    syncing = true;
    for (const other of $$(".chart")) {
      if (other !== el && other.data) Plotly.Fx.hover(other, { xval: ev.points[0].x });
    }
    syncing = false;
  });
  el.on("plotly_unhover", () => {
    if (syncing) return;
    for (const other of $$(".chart")) if (other !== el && other.data) Plotly.Fx.unhover(other);
  });
}

function csvCell(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// The chart's values as CSV: series, x (on its axis), the raw value and, while the chart smooths,
// the smoothed value in a column that says how (empty for a series never smoothed).
export function chartCsv(el) {
  const w = Number(el.dataset.smoothing || 0);
  const head = ["series", el.dataset.axis || "x", "value"];
  if (w > 0) head.push(`smoothed_ema_${w}`);
  const lines = [head.join(",")];
  for (const t of el.data || []) {
    if (t.meta && t.meta.raw) continue;
    const raw = (t.meta && t.meta.values) || t.y;
    t.x.forEach((x, i) => {
      const row = [csvCell(t.name), csvCell(x), csvCell(raw[i])];
      if (w > 0) row.push(t.meta && t.meta.smoothed ? csvCell(t.y[i]) : "");
      lines.push(row.join(","));
    });
  }
  return lines.join("\n") + "\n";
}

// The chart as a PNG that stands alone: its title above it, its axes' titles (already drawn).
export function chartFigure(el, title) {
  const layout = { ...el.layout,
    title: { text: title, x: 0.01, xanchor: "left", y: 0.98, yref: "container", yanchor: "top" } };
  layout.margin = { ...(el.layout.margin || {}), t: (el.layout.margin ? el.layout.margin.t : 10) + 40 };
  return { data: el.data, layout };
}

function download(name, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

export function chartControls(redraw, prefix) {
  const slider = $("#smoothing");
  if (slider) slider.addEventListener("input", () => { $("#smoothing-value").textContent = slider.value; redraw(); });
  for (const id of ["#log-scale", "#x-axis", "#earlier-attempts"]) {
    const el = $(id);
    if (el) el.addEventListener("change", redraw);
  }
  // Per-chart exports: Plotly renders the PNG (with the card's title); the CSV holds the values.
  for (const card of $$(".chart-card")) {
    const el = $(".chart", card);
    const name = `${prefix}-${card.dataset.panel}`;
    const title = $("h3", card).textContent.trim();
    const png = $(".export-png", card);
    if (png) png.addEventListener("click", () => el.data && Plotly.downloadImage(chartFigure(el, title), { format: "png", filename: name, width: 1000, height: 500 }));
    const csv = $(".export-csv", card);
    if (csv) csv.addEventListener("click", () => el.data && download(`${name}.csv`, chartCsv(el)));
  }
}
