// The runs pages' curves: one Plotly chart per panel, labels and panels from the page's facts.

import { $ } from "./runs_common.js";

export const COLORS = ["#2f5fd0", "#e07b1a", "#2a9d55", "#c23b22", "#8a4fc4", "#8c564b", "#d04fa0", "#6b6b70"];
const DASHES = ["solid", "dash", "dot", "dashdot"];

export class Series {
  constructor() { this.byName = new Map(); }
  clear() { this.byName.clear(); }
  add(rows) {
    for (const r of rows) {
      if (!this.byName.has(r.name)) this.byName.set(r.name, new Map());
      this.byName.get(r.name).set(r.step, r.value);
    }
  }
  xy(name) {
    const m = this.byName.get(name);
    if (!m) return [[], []];
    const steps = Array.from(m.keys()).sort((a, b) => a - b);
    return [steps, steps.map((s) => m.get(s))];
  }
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

function niceStep(maxStep) {
  const raw = Math.max(1, maxStep / 6);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return Math.max(1, (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p);
}

function chartOptions() {
  const slider = $("#smoothing");
  return { smoothing: slider ? Number(slider.value) : 0, log: !!($("#log-scale") || {}).checked };
}

// runs: [{id, label, series}]; one colour per metric (single run) or per run (compare).
// labels: the metric labels of the page's facts (app.runs.facts.METRIC_LABELS).
export function drawPanels(panels, runs, compare, labels) {
  if (typeof Plotly === "undefined") return;
  const opts = chartOptions();
  for (const panel of panels) {
    const traces = [];
    runs.forEach((run, ri) => panel.names.forEach((name, ni) => {
      const [xs, ys] = run.series.xy(name);
      if (!xs.length) return;
      const color = compare ? COLORS[ri % COLORS.length] : COLORS[ni % COLORS.length];
      const label = compare ? `${run.label} · ${labels[name] || name}` : labels[name] || name;
      const smooth = opts.smoothing > 0 && xs.length > 2;
      if (smooth && !compare) {
        traces.push({ x: xs, y: ys, mode: "lines", line: { color, width: 1 }, opacity: 0.3,
          showlegend: false, hoverinfo: "skip" });
      }
      traces.push({
        x: xs, y: smooth ? ema(ys, opts.smoothing) : ys, name: label,
        mode: xs.length < 40 ? "lines+markers" : "lines",
        line: { color, width: 2, dash: compare ? DASHES[ni % DASHES.length] : "solid" },
        marker: { size: 5 },
      });
    }));
    const el = document.getElementById(`chart-${panel.id}`);
    if (!el) continue;
    if (!traces.length) continue; // keeps the "No points yet." note
    const empty = el.querySelector(".chart-empty");
    if (empty) empty.remove();
    const maxStep = Math.max(...traces.map((t) => t.x[t.x.length - 1] || 0));
    const layout = {
      height: 270, margin: { l: 55, r: 15, t: 28, b: 40 },
      // Steps are integers: never label 2.5.
      xaxis: { title: { text: "step", standoff: 4 }, zeroline: false, tick0: 0, dtick: niceStep(maxStep) },
      yaxis: { type: opts.log && panel.log ? "log" : "linear", zeroline: false },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
      showlegend: traces.length > 1,
      hovermode: "x unified", paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
      font: { family: "system-ui, sans-serif", size: 12 },
    };
    Plotly.react(el, traces, layout, { displaylogo: false, responsive: true });
    el.dataset.points = String(traces.reduce((n, t) => n + (t.showlegend === false ? 0 : t.x.length), 0));
  }
}

export function chartControls(redraw) {
  const slider = $("#smoothing");
  if (slider) slider.addEventListener("input", () => { $("#smoothing-value").textContent = slider.value; redraw(); });
  const log = $("#log-scale");
  if (log) log.addEventListener("change", redraw);
}
