// The study page: per-variant table (mean ± 95% CI), paired differences, readings, curves per
// variant (mean line with a 95% band), the runs; live while any run is queued or running.

import { api } from "../common/api.js";
import { statusBadge } from "../common/badges.js";
import { $, cell, labelCells, link, pageData } from "../common/dom.js";
import { COLORS, stepAxis } from "../runs/charts.js";
import { fmtNum, fmtStat } from "./stats.js";

function head(table, names) {
  const tr = document.createElement("tr");
  names.forEach(([text, cls]) => {
    const th = document.createElement("th");
    th.textContent = text;
    if (cls) th.className = cls;
    tr.append(th);
  });
  table.tHead.replaceChildren(tr);
}

function renderSummary(d) {
  const table = $("#summary-table");
  const outcomes = d.facts.outcomes;
  head(table, [["variant"], ["n", "num"], ...outcomes.map((o) => [o.label, "num"])]);
  const rows = d.summary.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.variant = r.variant;
    cell(tr, r.variant);
    cell(tr, String(r.n), "num n");
    for (const { name } of outcomes) cell(tr, fmtStat(r[name], d.facts), "num stat").dataset.outcome = name;
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
  labelCells(table);
}

function renderPaired(d) {
  const table = $("#paired-table");
  head(table, [["variant"], ["against"], ["n", "num"], ["final held-out difference", "num"], ["CI excludes 0"]]);
  const rows = d.paired.map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.variant = p.variant;
    tr.dataset.vs = p.vs;
    cell(tr, p.variant);
    cell(tr, `${p.vs_label} (${p.vs})`);
    cell(tr, String(p.final_heldout_diff.n), "num");
    cell(tr, fmtStat(p.final_heldout_diff, d.facts, true), "num diff");
    // No interval (n < 2): no verdict either way, never a "no".
    const said = p.excludes_zero === null ? d.facts.no_interval : p.excludes_zero ? "yes: beyond seed noise" : "no";
    const verdict = cell(tr, said, "verdict");
    verdict.classList.toggle("beyond", p.excludes_zero === true);
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
  labelCells(table);
  $("#paired-empty").hidden = d.paired.length > 0;
  $("#readings").replaceChildren(...d.readings.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
}

function renderRuns(d) {
  const rows = d.runs.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.runId = r.id;
    cell(tr, r.page ? link(r.page, r.id) : r.id);
    cell(tr, r.variant);
    cell(tr, String(r.seed), "num");
    cell(tr, statusBadge(r.status, d.facts), "status-cell");
    cell(tr, `${r.step}${r.total_steps ? " / " + r.total_steps : ""} steps`, "small muted");
    cell(tr, fmtNum(r.final_eval_loss, 4), "num");
    return tr;
  });
  $("#study-runs").tBodies[0].replaceChildren(...rows);
  labelCells($("#study-runs"));
}

function renderHead(d) {
  $("#study-status").replaceChildren(statusBadge(d.status, d.facts));
  const done = d.counts.succeeded || 0;
  $("#study-facts").textContent =
    `${d.variants.length} variants × ${d.seeds.length} seeds (${d.seeds.join(", ")}) = ${d.n_runs} runs; ` +
    `${done} succeeded` + Object.entries(d.counts).filter(([s]) => s !== "succeeded").map(([s, n]) => `, ${n} ${s}`).join("");
  // Only the server's own runs (those with a page) can be cancelled here; a CLI study stops in its terminal.
  $("#cancel-study").hidden = !d.runs.some((r) => d.facts.run_active.includes(r.status) && r.page);
  $("#study-resume").hidden = !d.resume;
  $("#study-resume-command").textContent = d.resume || "";
}

// A variant's line: the house colours, then the same colours dashed, then dotted, so that every
// variant of a large study (13 in the reproduction) has a line of its own.
const DASHES = ["solid", "dash", "dot"];
function variantStyle(i) {
  return { color: COLORS[i % COLORS.length], dash: DASHES[Math.floor(i / COLORS.length) % DASHES.length] };
}

// Plotly puts the legend above the plot and shrinks the plot to keep the chart's height: grow the
// height by the legend's rows instead (estimated from the labels at 11 px), so that a study of
// 13 variants keeps as tall a plot as one of 2.
const PLOT_HEIGHT = 250;
const LEGEND_ROW = 29;
function legendRows(labels, width) {
  let rows = 1;
  let x = 0;
  for (const label of labels) {
    const w = 46 + 6.6 * label.length; // the line sample, its gap and the text
    if (x > 0 && x + w > width) { rows += 1; x = 0; }
    x += w;
  }
  return rows;
}

// One chart per panel: per variant, a band (mean ± CI, where n ≥ 2) and the mean line.
function drawCurves(d) {
  if (typeof Plotly === "undefined") return;
  for (const panel of d.panels) {
    const traces = [];
    const shown = [];
    d.variants.forEach((variant, i) => {
      const curve = ((d.curves[variant] || {})[panel.name]) || { step: [] };
      if (!curve.step.length) return;
      shown.push(variant);
      const { color, dash } = variantStyle(i);
      traces.push({ x: curve.step, y: curve.hi, mode: "lines", line: { width: 0, color }, hoverinfo: "skip", showlegend: false, legendgroup: variant });
      traces.push({ x: curve.step, y: curve.lo, mode: "lines", line: { width: 0, color }, fill: "tonexty",
        fillcolor: color + "33", hoverinfo: "skip", showlegend: false, legendgroup: variant });
      traces.push({ x: curve.step, y: curve.mean, mode: "lines+markers", name: variant, legendgroup: variant,
        line: { color, width: 2, dash }, marker: { size: 5 }, customdata: curve.n,
        hovertemplate: `${variant}: %{y:.4f} (n=%{customdata})<extra></extra>` });
    });
    const el = document.getElementById(`chart-${panel.id}`);
    el.dataset.traces = String(traces.length / 3);
    if (!traces.length) continue;
    el.querySelector(".chart-empty")?.remove();
    const margin = { l: 55, r: 10, t: 10, b: 40 };
    const rows = legendRows(shown, el.clientWidth - margin.l - margin.r);
    Plotly.react(el, traces, {
      margin, height: PLOT_HEIGHT + LEGEND_ROW * rows,
      xaxis: { title: { text: "step", standoff: 4 }, ...stepAxis(traces.flatMap((t) => t.x)) },
      yaxis: { title: { text: d.facts.metric_labels[panel.name] } },
      // Above the plot (as on the run pages), clear of the axis title on a phone.
      legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom", font: { size: 11 } },
    }, { displaylogo: false, responsive: true });
  }
}

function render(d) {
  renderHead(d);
  renderSummary(d);
  renderPaired(d);
  renderRuns(d);
  drawCurves(d);
  document.dispatchEvent(new CustomEvent("study:data", { detail: d })); // the token compare
}

function initStudy(data) {
  render(data);
  let current = data;
  const live = $("#live-state");
  const isActive = (d) => d.facts.active.includes(d.status);
  async function poll() {
    if (!isActive(current)) { live.textContent = ""; return; }
    live.textContent = "live: updating every 2 s";
    const res = await api("GET", data.links.api);
    if (res.ok) { current = res.data; render(current); }
    if (isActive(current)) setTimeout(poll, 2000);
    else live.textContent = "";
  }
  if (isActive(current)) live.textContent = "live: updating every 2 s";
  $("#cancel-study").addEventListener("click", async () => {
    const res = await api("POST", data.links.cancel);
    if (res.ok) { current = res.data; render(current); }
    else live.textContent = res.data.detail;
  });
  setTimeout(poll, 2000);
}

initStudy(pageData("study-data"));
