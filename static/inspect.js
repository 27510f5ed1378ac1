/* The Inspect page: score a text (POST /api/score or /api/compare), render its tokens once, then
   let the policy controls re-mark them in the page (inspect_policy.js, no model call). */
import { drawCharts, drawSchedule, updateCuts } from "./inspect_charts.js";
import { exportCsv, exportJson } from "./inspect_export.js";
import { onModelStatus } from "./model_status.js";
import { dropRate, selectDrops } from "./inspect_policy.js";
import { applyMarks, computeScale, el, fmt, initTokenEvents, installColourClasses, pct, renderLegend,
  renderPane } from "./inspect_view.js";

const $ = (id) => document.getElementById(id);
const DATA = JSON.parse($("inspect-data").textContent);

// Everything the page knows; `timings` is read by the benchmark and the tests.
const state = {
  result: null, // {mode, panes: [{score, label, entropies, u, spans, marks, sel}], sameTokens, note, delta}
  view: "side", // compare mode: "side" (two panes) or "delta" (one pane coloured by B - A)
  draws: new Map(), // "n:seed" -> Promise<number[]>
  scale: { hmax: 1, dmax: 1 },
  dropMode: null,
  retryTimer: null,
  chartsPending: false,
  renderCount: 0,
  timings: {},
};
window.EntroInspect = { state, applyPolicy: () => applyPolicy(), currentPolicy: () => readPolicy() };

// ---------------------------------------------------------------- controls

function num(id) {
  return Number($(id).value);
}

function readPolicy() {
  const selection = document.querySelector('input[name="selection"]:checked').value;
  const seedText = $("seed").value.trim();
  return {
    config: {
      selection: selection,
      quantile: num("quantile"),
      threshold: selection === "threshold" ? num("threshold") : null,
      rate_max: num("rate-max"),
      schedule: $("schedule").value,
      steepness: num("steepness"),
      midpoint: num("midpoint"),
      drop_mode: $("drop-mode").value,
      seed: /^\d+$/.test(seedText) ? Number(seedText) : 0,
    },
    progress: num("progress"),
  };
}

function initControls() {
  const d = DATA.policy_defaults;
  for (const [id, key] of [["quantile", "quantile"], ["rate-max", "rate_max"], ["schedule", "schedule"],
    ["steepness", "steepness"], ["midpoint", "midpoint"], ["drop-mode", "drop_mode"], ["seed", "seed"]]) {
    $(id).value = d[key];
  }
  if (d.threshold !== null) $("threshold").value = d.threshold;
  updateOutputs(readPolicy());
}

function updateOutputs(p) {
  $("quantile-out").textContent = p.config.quantile.toFixed(2);
  $("threshold-out").textContent = num("threshold").toFixed(2);
  $("rate-max-out").textContent = p.config.rate_max.toFixed(2);
  $("steepness-out").textContent = p.config.steepness.toFixed(1);
  $("midpoint-out").textContent = p.config.midpoint.toFixed(2);
  $("progress-out").textContent = `${p.progress.toFixed(2)} → r(s) = ${dropRate(p.progress, p.config).toFixed(3)}`;
  $("quantile-row").hidden = p.config.selection !== "quantile";
  $("threshold-row").hidden = p.config.selection !== "threshold";
  document.querySelector(".sigmoid-only").hidden = p.config.schedule !== "sigmoid";
}

function modelSpec(selectId, folderId) {
  const value = $(selectId).value;
  if (value === "__folder__") return $(folderId).value.trim() || null;
  return value || null;
}

function setStatus(message, kind) {
  $("score-status").textContent = message;
  $("score-status").dataset.kind = kind || "";
}

// ---------------------------------------------------------------- server calls

async function fetchJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, body: body,
    retryAfter: Number(response.headers.get("Retry-After")) || 0 };
}

function detailOf(res) {
  const d = res.body && res.body.detail;
  if (typeof d === "string") return d;
  return d ? JSON.stringify(d) : `request failed (HTTP ${res.status})`;
}

// The uniform draws select_drops makes for n tokens and a seed (cached: they never change).
function draws(n, seed) {
  const key = `${n}:${seed}`;
  if (!state.draws.has(key)) {
    state.draws.set(key, fetchJSON(`/api/draws?n=${n}&seed=${seed}`).then((res) => {
      if (res.ok) return res.body.u;
      state.draws.delete(key);
      throw new Error(detailOf(res));
    }));
  }
  return state.draws.get(key);
}

async function attachDraws(seed) {
  if (!state.result) return;
  await Promise.all(state.result.panes.map(async (pane) => {
    pane.u = await draws(pane.entropies.length, seed);
  }));
}

function makePane(score, label) {
  return { score, label, entropies: score.tokens.map((t) => t.entropy), u: null, spans: null,
    baseClass: null, marks: null, sel: null };
}

function toResult(body, compare) {
  if (!compare) {
    return { mode: "single", panes: [makePane(body, body.model)], sameTokens: false, note: null,
      delta: null, deltaSummary: null };
  }
  return { mode: "compare", panes: [makePane(body.a, `A: ${body.a.model}`), makePane(body.b, `B: ${body.b.model}`)],
    sameTokens: body.same_tokens, note: body.note, delta: body.delta, deltaSummary: body.delta_summary };
}

async function score() {
  clearTimeout(state.retryTimer);
  const text = $("text").value;
  if (!text) {
    setStatus("Paste, upload or pick some text first.", "error");
    return;
  }
  const compare = $("compare-on").checked;
  const topK = Number($("top-k").value) || 0;
  const specA = modelSpec("model", "model-folder");
  const body = compare
    ? { text, model_a: specA, model_b: modelSpec("model-b", "model-b-folder") || DATA.model.spec, top_k: topK }
    : { text, model: specA, top_k: topK };
  $("score-btn").disabled = true;
  setStatus("Scoring…", "busy");
  const t0 = performance.now();
  const res = await fetchJSON(compare ? "/api/compare" : "/api/score", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  }).catch((err) => ({ ok: false, status: 0, body: { detail: `the server did not answer (${err})` } }));
  $("score-btn").disabled = false;
  if (res.status === 503 && res.retryAfter) { // model loading or queue full: try again by itself
    setStatus(`${detailOf(res)} (retrying in ${res.retryAfter} s)`, "busy");
    state.retryTimer = setTimeout(score, res.retryAfter * 1000);
    return;
  }
  if (!res.ok) {
    setStatus(detailOf(res), "error");
    return;
  }
  const t1 = performance.now();
  state.result = toResult(res.body, compare);
  try {
    await attachDraws(readPolicy().config.seed);
  } catch (err) {
    setStatus(String(err.message || err), "error");
    return;
  }
  renderResult();
  const t2 = performance.now();
  state.timings = { ...state.timings, scoreMs: t1 - t0, renderMs: t2 - t1, totalMs: t2 - t0 };
  const n = state.result.panes[0].score.n_tokens;
  setStatus(`Scored ${n} tokens in ${((t1 - t0) / 1000).toFixed(2)} s; drawn in ${Math.round(t2 - t1)} ms.`, "ok");
}

// ---------------------------------------------------------------- rendering

function showDelta() {
  const r = state.result;
  return r.mode === "compare" && r.sameTokens && state.view === "delta";
}

function shownPanes() {
  // The difference view shows one pane coloured by B - A, marked by A's policy.
  return showDelta() ? [state.result.panes[0]] : state.result.panes;
}

function renderResult() {
  const result = state.result;
  state.scale = computeScale(result);
  $("threshold").max = String(Math.max(1, Math.ceil(state.scale.hmax)));
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
function applyPolicy() {
  const t0 = performance.now();
  const p = readPolicy();
  updateOutputs(p);
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
  if (state.dropMode !== p.config.drop_mode) {
    state.dropMode = p.config.drop_mode;
    renderLegend($("legend"), { scale: state.scale, delta: showDelta(), dropMode: p.config.drop_mode });
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

function renderSummary(p) {
  const result = state.result;
  const table = el("table", "numbers");
  const head = el("tr");
  for (const h of ["", "tokens", "mean entropy", "perplexity", "τ (cut)", "r(s)", "candidates", "dropped"]) {
    head.appendChild(el("th", "", h));
  }
  table.appendChild(head);
  for (const pane of result.panes) {
    const sel = pane.sel;
    const scored = pane.entropies.length - 1; // every token but the first has a prediction
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
    table.appendChild(row);
  }
  let foot = "Percentages are of the tokens that have a prediction (all but the first). " +
    `Drop mode “${p.config.drop_mode}”, seed ${p.config.seed}, progress s = ${p.progress.toFixed(2)}.`;
  if (result.deltaSummary) {
    const ds = result.deltaSummary;
    foot += ` Mean entropy change B − A: ${fmt(ds.mean_delta)} nats (mean |Δ| ${fmt(ds.mean_abs_delta)}); ` +
      `B is more certain on ${pct(ds.fraction_lower_in_b, 1)} of tokens.`;
  }
  $("summary").replaceChildren(table, el("p", "hint", foot));
}

// ---------------------------------------------------------------- wiring

function initText() {
  $("sample").addEventListener("change", () => {
    const sample = DATA.samples.find((s) => s.id === $("sample").value);
    if (!sample) return;
    $("text").value = sample.text;
    score();
  });
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (!file) return;
    const limit = DATA.limits.max_upload_bytes;
    if (file.size > limit) {
      setStatus(`${file.name} is ${file.size} bytes; the limit is ${limit} bytes.`, "error");
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      $("text").value = String(reader.result);
      $("sample").value = "";
      setStatus(`Loaded ${file.name}; press Score.`, "ok");
    };
    reader.onerror = () => setStatus(`Could not read ${file.name}.`, "error");
    reader.readAsText(file);
  });
  $("text").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) score();
  });
  $("score-btn").addEventListener("click", score);
}

function initModelPickers() {
  for (const [sel, folder] of [["model", "model-folder"], ["model-b", "model-b-folder"]]) {
    $(sel).addEventListener("change", () => {
      $(folder).hidden = $(sel).value !== "__folder__";
      if (!$(folder).hidden) $(folder).focus();
    });
  }
  $("compare-on").addEventListener("change", () => {
    $("compare-box").hidden = !$("compare-on").checked;
  });
  preselectModel(new URLSearchParams(window.location.search).get("model"));
}

// `/?model=run:<id>` (the run page's "inspect with this checkpoint") or `/?model=<folder>`.
function preselectModel(spec) {
  if (!spec) return;
  const known = Array.from($("model").options).some((o) => o.value === spec);
  if (known) {
    $("model").value = spec;
  } else {
    $("model").value = "__folder__";
    $("model-folder").value = spec;
    $("model-folder").hidden = false;
  }
}

function initPolicy() {
  for (const id of ["quantile", "threshold", "rate-max", "steepness", "midpoint", "progress"]) {
    $(id).addEventListener("input", applyPolicy);
  }
  for (const id of ["schedule", "drop-mode"]) $(id).addEventListener("change", applyPolicy);
  for (const radio of document.querySelectorAll('input[name="selection"]')) {
    radio.addEventListener("change", () => {
      // Start the threshold where the quantile cut was, so that the marks do not jump.
      const sel = state.result && state.result.panes[0].sel;
      if (radio.value === "threshold" && sel && Number.isFinite(sel.tau)) {
        $("threshold").value = String(Math.round(sel.tau / 0.05) * 0.05);
      }
      applyPolicy();
    });
  }
  let seedTimer = null;
  $("seed").addEventListener("input", () => {
    clearTimeout(seedTimer);
    seedTimer = setTimeout(async () => {
      const seed = readPolicy().config.seed;
      try {
        await attachDraws(seed);
      } catch (err) {
        setStatus(String(err.message || err), "error");
        return;
      }
      if (readPolicy().config.seed === seed) applyPolicy();
    }, 150);
  });
  for (const radio of document.querySelectorAll('input[name="view"]')) {
    radio.addEventListener("change", () => {
      state.view = radio.value;
      if (state.result) renderResult();
    });
  }
  $("export-csv").addEventListener("click", () => state.result && exportCsv(state.result));
  $("export-json").addEventListener("click", () => state.result && exportJson(state.result, readPolicy()));
}

function watchModel() {
  if (DATA.model.model_loaded) return;
  const stop = onModelStatus((health) => {
    if (!health) return;
    if (health.model_loaded) {
      $("loading-note").hidden = true;
      stop();
    } else if (health.state === "error") {
      $("loading-note").textContent = `The model did not load: ${health.error}`;
      $("loading-note").classList.add("error");
      stop();
    }
  });
}

installColourClasses();
initControls();
initText();
initModelPickers();
initPolicy();
initTokenEvents($("panes"), $("tip"), () => ({ result: state.result, shown: state.result ? shownPanes() : [] }));
drawSchedule(readPolicy());
watchModel();
