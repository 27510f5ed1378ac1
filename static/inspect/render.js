/* Draw a scored result: panes of tokens, marks, legend, summary and charts; and the fast path of
   every policy control, which re-marks the tokens without re-scoring. */
import { drawCharts, drawSchedule, updateCuts } from "./charts.js";
import { computeScale } from "./colours.js";
import { readPolicy, seedProblem, updateOutputs } from "./controls.js";
import { selectDrops } from "./policy.js";
import { saveUrl } from "./share.js";
import { $, DATA, MODES, state } from "./state.js";
import { applyMarks, el, fmt, pct, renderLegend, renderPane } from "./view.js";

function showDelta() {
  const r = state.result;
  return r.mode === "compare" && r.sameTokens && state.view === "delta";
}

export function shownPanes() {
  // The difference view shows one pane coloured by B - A, marked by A's policy.
  return showDelta() ? [state.result.panes[0]] : state.result.panes;
}

export function renderResult() {
  const result = state.result;
  state.scale = computeScale(result, colourOptions());
  const hmax = Math.max(0, ...result.panes.flatMap((pane) => pane.entropies.filter((e) => e !== null)));
  $("threshold").max = String(Math.max(1, Math.ceil(hmax)));
  $("empty-state").hidden = true;
  $("results").hidden = false;
  const compare = result.mode === "compare";
  $("view-box").hidden = !compare;
  const deltaRadio = document.querySelector('input[name="view"][value="delta"]');
  deltaRadio.disabled = !(compare && result.sameTokens);
  if (deltaRadio.disabled && state.view === "delta") {
    state.view = "side";
    document.querySelector('input[name="view"][value="side"]').checked = true;
  }
  $("compare-note").hidden = !result.note;
  $("compare-note").textContent = result.note || "";
  renderPanes();
  drawCharts(result, showDelta());
  state.renderCount += 1;
  $("results").dataset.rendered = String(state.renderCount);
}

function renderPanes() {
  const result = state.result;
  const shown = shownPanes();
  const container = $("panes");
  container.replaceChildren();
  container.classList.toggle("two", shown.length === 2);
  for (const pane of result.panes) pane.spans = null;
  const opts = { scale: state.scale, delta: showDelta() ? result.delta : null };
  shown.forEach((pane, i) => container.appendChild(renderPane(pane, i, opts)));
  state.dropMode = null; // forces the legend
  applyPolicy();
}

// The fast path of every control: recompute the marks, touch only the spans that changed.
export function applyPolicy() {
  const t0 = performance.now();
  const p = readPolicy();
  const problem = seedProblem();
  $("seed-error").textContent = problem || "";
  $("seed-error").hidden = !problem;
  $("seed").setAttribute("aria-invalid", problem ? "true" : "false");
  if (problem) return; // keep the last valid marks rather than guess a seed
  updateOutputs(p);
  saveUrl();
  const result = state.result;
  if (!result) {
    drawSchedule(p);
    return;
  }
  for (const pane of result.panes) {
    if (!pane.u) continue;
    pane.sel = selectDrops(pane.entropies, pane.u, p.config, p.progress);
    if (pane.spans) applyMarks(pane);
  }
  if (state.dropMode !== p.config.drop_mode || state.legendFor !== state.scale) {
    state.legendFor = state.scale;
    state.dropMode = p.config.drop_mode;
    const untrained = result.panes.some((pane) => pane.conversation);
    renderLegend($("legend"), { scale: state.scale, delta: showDelta(), dropMode: p.config.drop_mode, untrained });
  }
  renderSummary(p);
  state.timings.policyMs = performance.now() - t0;
  scheduleCharts(p);
}

// Charts follow the sliders at most once per frame, and only after the marks have been painted
// (a task queued from the frame callback runs after that frame's paint).
function scheduleCharts(p) {
  state.pendingPolicy = p;
  if (state.chartsPending) return;
  state.chartsPending = true;
  requestAnimationFrame(() => setTimeout(() => {
    state.chartsPending = false;
    drawSchedule(state.pendingPolicy);
    if (state.result) updateCuts(state.result, showDelta());
  }, 0));
}

// One row per pane: its numbers under the current policy.
function summaryRow(pane) {
  const sel = pane.sel;
  // Tokens with a prediction (all but the first) in the drop scope (a conversation's: trained).
  const scored = pane.entropies.filter((e) => e !== null).length;
  const row = el("tr");
  const cells = [
    [pane.label, "th"], [String(pane.score.n_tokens)], [`${fmt(pane.score.summary.mean_entropy)} nats`],
    [fmt(pane.score.summary.perplexity, 2)], [sel ? `${fmt(sel.tau)} nats` : "–"], [sel ? fmt(sel.rate) : "–"],
    [sel ? `${pct(sel.nCandidates, scored)} (${sel.nCandidates})` : "–", "td", "candidates"],
    [sel ? `${pct(sel.nDropped, scored)} (${sel.nDropped})` : "–", "td", "dropped"],
  ];
  for (const [text, tag, field] of cells) {
    const cell = el(tag || "td", "", text);
    if (field) cell.dataset.field = field;
    row.appendChild(cell);
  }
  return row;
}

function renderSummary(p) {
  const result = state.result;
  const table = el("table", "numbers");
  const head = el("tr");
  for (const h of ["", "tokens", "mean entropy", "perplexity", "τ (cut)", "r(s)", "candidates", "dropped"]) {
    head.appendChild(el("th", "", h));
  }
  table.appendChild(head);
  for (const pane of result.panes) table.appendChild(summaryRow(pane));
  const scope = result.panes[0].conversation ? " and carry loss (the answers: the drop scope)" : " (all but the first)";
  let foot = `Percentages are of the tokens that have a prediction${scope}. ` +
    `Drop mode “${p.config.drop_mode}”, seed ${p.config.seed}, progress s = ${p.progress.toFixed(2)}.`;
  if (result.deltaSummary) {
    const ds = result.deltaSummary;
    foot += ` Mean entropy change B − A: ${fmt(ds.mean_delta)} nats (mean |Δ| ${fmt(ds.mean_abs_delta)}); ` +
      `B is more certain on ${pct(ds.fraction_lower_in_b, 1)} of tokens.`;
  }
  $("summary").replaceChildren(table, el("p", "hint", foot));
}

function colourOptions() {
  const mode = MODES.get(state.colour.mode) || MODES.get("entropy");
  return { mode: mode.id, unit: mode.unit, fixed: state.colour.fixed, fixedMax: mode.fixed_max,
    buckets: DATA.rank_buckets };
}

export function setColour(mode, fixed) {
  state.colour = { mode: MODES.has(mode) ? mode : "entropy", fixed: Boolean(fixed) };
  $("colour").value = state.colour.mode;
  $("scale").value = state.colour.fixed ? "fixed" : "auto";
  const m = MODES.get(state.colour.mode);
  $("scale").disabled = m.fixed_max === null; // probability is 0..1 and rank is categorical anyway
  $("scale").options[1].textContent = m.fixed_max === null ? "fixed" : `fixed 0–${m.fixed_max} ${m.unit}`;
  if (state.result) renderResult();
  saveUrl();
}
