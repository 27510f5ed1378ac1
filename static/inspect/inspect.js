/* The Inspect page: score a text (POST /api/score or /api/compare), render its tokens once, then
   let the policy controls re-mark them in the page (inspect_policy.js, no model call). */
import { drawCharts, drawSchedule, updateCuts } from "./inspect_charts.js";
import { exportCsv, exportJson } from "./inspect_export.js";
import { onModelStatus } from "./model_status.js";
import { dropRate, selectDrops } from "./inspect_policy.js";
import { streamScore } from "./inspect_stream.js";
import { decodeState, encodeState } from "./inspect_url.js";
import { applyMarks, computeScale, el, fmt, initTokenEvents, installColourClasses, pct, renderLegend,
  renderPane } from "./inspect_view.js";

const $ = (id) => document.getElementById(id);
const DATA = JSON.parse($("inspect-data").textContent);

// Everything the page knows; `timings` is read by the benchmark and the tests.
const state = {
  result: null, // {mode, panes: [{score, label, entropies, u, spans, marks, sel}], sameTokens, note, delta}
  view: "side", // compare mode: "side" (two panes) or "delta" (one pane coloured by B - A)
  draws: new Map(), // "n:seed" -> Promise<number[]>
  scale: null,
  colour: { mode: "entropy", fixed: false },
  job: null, // {controller, t0} while a scoring request runs
  urlTimer: null,
  dropMode: null,
  retryTimer: null,
  chartsPending: false,
  renderCount: 0,
  timings: {},
};
window.EntroInspect = { state, applyPolicy: () => applyPolicy(), currentPolicy: () => readPolicy() };
const MODES = new Map(DATA.colour_modes.map((m) => [m.id, m]));

// ---------------------------------------------------------------- controls

function num(id) {
  return Number($(id).value);
}

// A seed is a whole number >= 0; anything else is said, never silently read as 0.
function seedProblem() {
  const text = $("seed").value.trim();
  if (text === "") return "seed is empty: give a whole number ≥ 0";
  if (!/^\d+$/.test(text)) return `seed ${text} is not a whole number ≥ 0`;
  if (Number(text) > Number.MAX_SAFE_INTEGER) return `seed ${text} is too large`;
  return null;
}

function readPolicy() {
  const selection = document.querySelector('input[name="selection"]:checked').value;
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
      seed: seedProblem() ? null : Number($("seed").value.trim()),
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

function requestBody() {
  const text = $("text").value;
  const topK = Number($("top-k").value) || 0;
  const specA = modelSpec("model", "model-folder");
  if (!$("compare-on").checked) return { url: "/api/score", body: { text, model: specA, top_k: topK } };
  const specB = modelSpec("model-b", "model-b-folder") || DATA.model.spec;
  return { url: "/api/compare", body: { text, model_a: specA, model_b: specB, top_k: topK } };
}

function secs(s) {
  return s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;
}

// Progress events: a bar of tokens done / total and the ETA the server computes.
function showProgress(event) {
  const bar = $("score-progress");
  if (event.event === "queued" && event.ahead > 0) {
    setStatus(`Waiting: ${event.ahead} scoring job${event.ahead > 1 ? "s" : ""} ahead…`, "busy");
  } else if (event.event === "started") {
    setStatus("Loading the model and tokenizing…", "busy");
  } else if (event.event === "progress") {
    bar.hidden = false;
    bar.max = Math.max(1, event.total);
    bar.value = event.done;
    const who = event.stage ? `model ${event.stage}: ` : "";
    const eta = event.eta_s === null ? "" : ` · about ${secs(event.eta_s)} left`;
    setStatus(`Scoring ${who}${event.done.toLocaleString()} / ${event.total.toLocaleString()} tokens${eta}`, "busy");
  }
}

function endJob() {
  state.job = null;
  $("score-btn").disabled = false;
  $("cancel-btn").hidden = true;
  $("score-progress").hidden = true;
}

function cancelScore() {
  if (!state.job) return;
  state.job.controller.abort(); // closes the connection: the server drops the job
}

async function score() {
  clearTimeout(state.retryTimer);
  const problem = textProblem($("text").value);
  if (problem) {
    setStatus(problem, "error");
    return;
  }
  if (state.job) return;
  const { url, body } = requestBody();
  const compare = url === "/api/compare";
  const controller = new AbortController();
  state.job = { controller };
  $("score-btn").disabled = true;
  $("cancel-btn").hidden = false;
  setStatus("Scoring…", "busy");
  const t0 = performance.now();
  let res;
  try {
    res = await streamScore(url, body, { signal: controller.signal, onEvent: showProgress });
  } catch (err) {
    endJob();
    if (err.name === "AbortError") setStatus("Cancelled: the server stopped scoring this text.", "error");
    else setStatus(`the server did not answer (${err})`, "error");
    return;
  }
  endJob();
  if (res.status === 503 && res.retryAfter) { // model loading or queue full: try again by itself
    setStatus(`${res.body.detail} (retrying in ${res.retryAfter} s)`, "busy");
    state.retryTimer = setTimeout(score, res.retryAfter * 1000);
    return;
  }
  if (!res.ok) {
    setStatus(res.body.detail, "error");
    return;
  }
  const t1 = performance.now();
  state.result = toResult(res.body, compare);
  try {
    await attachDraws(readPolicy().config.seed ?? DATA.policy_defaults.seed);
  } catch (err) {
    setStatus(String(err.message || err), "error");
    return;
  }
  renderResult();
  const t2 = performance.now();
  state.timings = { ...state.timings, scoreMs: t1 - t0, renderMs: t2 - t1, totalMs: t2 - t0 };
  const n = state.result.panes[0].score.n_tokens;
  setStatus(`Scored ${n} tokens in ${((t1 - t0) / 1000).toFixed(2)} s; drawn in ${Math.round(t2 - t1)} ms.`, "ok");
  estimate();
  saveUrl();
}

// What the API would refuse, said before sending (the API says the same with a 422).
function textProblem(text) {
  if (!text) return "Paste, upload or pick some text first.";
  if (!text.trim()) return "The text is only whitespace: there is nothing to score.";
  if (text.includes("\u0000")) return "The text looks like binary data (NUL bytes), not text.";
  return null;
}

// Before scoring: the token count and how long it should take here (the measured rate).
async function estimate() {
  const text = $("text").value;
  const problem = textProblem(text);
  const info = $("text-info");
  if (problem) {
    info.textContent = text ? problem : `Up to ${DATA.limits.max_score_tokens} tokens.`;
    info.dataset.kind = text ? "error" : "";
    return;
  }
  const model = modelSpec("model", "model-folder");
  const res = await fetchJSON("/api/estimate", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text, model }) }).catch(() => null);
  if (!res || $("text").value !== text) return; // the text changed meanwhile: a newer call follows
  if (!res.ok) {
    info.textContent = detailOf(res);
    info.dataset.kind = "error";
    return;
  }
  const e = res.body;
  const count = e.n_tokens === null ? "Token count once the model is loaded" : `${e.n_tokens.toLocaleString()} tokens`;
  const time = e.eta_s !== null ? ` · about ${secs(e.eta_s)} to score here (${Math.round(e.tokens_per_s)} tokens/s measured)`
    : " · no measurement of this model's speed yet";
  const over = e.n_tokens !== null && e.n_tokens > e.limit ? ` · over the limit of ${e.limit}` : "";
  info.textContent = count + time + over;
  info.dataset.kind = over ? "error" : "";
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
function applyPolicy() {
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

// ---------------------------------------------------------------- colour and the URL

function colourOptions() {
  const mode = MODES.get(state.colour.mode) || MODES.get("entropy");
  return { mode: mode.id, unit: mode.unit, fixed: state.colour.fixed, fixedMax: mode.fixed_max,
    buckets: DATA.rank_buckets };
}

function setColour(mode, fixed) {
  state.colour = { mode: MODES.has(mode) ? mode : "entropy", fixed: Boolean(fixed) };
  $("colour").value = state.colour.mode;
  $("scale").value = state.colour.fixed ? "fixed" : "auto";
  const m = MODES.get(state.colour.mode);
  $("scale").disabled = m.fixed_max === null; // probability is 0..1 and rank is categorical anyway
  $("scale").options[1].textContent = m.fixed_max === null ? "fixed" : `fixed 0–${m.fixed_max} ${m.unit}`;
  if (state.result) renderResult();
  saveUrl();
}

function currentView() {
  return { text: $("text").value, model: modelSpec("model", "model-folder"),
    modelB: $("compare-on").checked ? modelSpec("model-b", "model-b-folder") : null,
    topK: Number($("top-k").value) || 0, colour: state.colour.mode, fixed: state.colour.fixed,
    policy: readPolicy() };
}

// The address bar follows the view (replaceState: no history entry per slider move).
function saveUrl() {
  clearTimeout(state.urlTimer);
  state.urlTimer = setTimeout(() => {
    const { query } = encodeState(currentView(), DATA.limits.url_text_chars);
    history.replaceState(null, "", `${location.pathname}?${query}`);
  }, 200);
}

async function copyLink() {
  const view = currentView();
  const { query, textIncluded } = encodeState(view, DATA.limits.url_text_chars);
  const link = `${location.origin}${location.pathname}?${query}`;
  history.replaceState(null, "", `${location.pathname}?${query}`);
  $("share-link").value = link;
  $("share-link").hidden = false;
  $("share-link").select();
  try {
    await navigator.clipboard.writeText(link);
  } catch (err) { /* no clipboard without a secure context: the link is selected to copy */ }
  $("share-note").textContent = textIncluded ? "Link copied: it reopens this text, model, policy and colours."
    : `Link copied without the text: it has ${view.text.length.toLocaleString()} characters, over the ` +
      `${DATA.limits.url_text_chars.toLocaleString()} a link carries (paste it again after opening).`;
}

// Opening a link: controls from the URL, then score when it carries a text.
function applyUrl() {
  const v = decodeState(location.search);
  if (v.model) preselectModel("model", "model-folder", v.model);
  if (v.modelB) {
    $("compare-on").checked = true;
    $("compare-box").hidden = false;
    preselectModel("model-b", "model-b-folder", v.modelB);
  }
  if (v.topK !== null) $("top-k").value = v.topK;
  for (const [key, value] of Object.entries(v.policy)) {
    if (key === "selection") {
      const radio = document.querySelector(`input[name="selection"][value="${CSS.escape(value)}"]`);
      if (radio) radio.checked = true;
    } else {
      const id = key.replace("_", "-");
      if ($(id)) $(id).value = value;
    }
  }
  if (v.progress !== null) $("progress").value = v.progress;
  setColour(v.colour || "entropy", v.scale === "fixed");
  applyPolicy();
  if (v.text !== null) {
    $("text").value = v.text;
    score();
  }
}

// ---------------------------------------------------------------- wiring

function initText() {
  $("sample").addEventListener("change", () => {
    const sample = DATA.samples.find((s) => s.id === $("sample").value);
    if (!sample) return;
    $("text").value = sample.text;
    estimate();
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
      const bytes = new Uint8Array(reader.result);
      let text;
      try { // a file that is not UTF-8, or holds NUL bytes, is not text to score
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch (err) {
        text = null;
      }
      if (text === null || text.includes("\u0000")) {
        setStatus(`${file.name} is not a UTF-8 text file (binary data?); nothing was loaded.`, "error");
        return;
      }
      $("text").value = text;
      $("sample").value = "";
      setStatus(`Loaded ${file.name}; press Score.`, "ok");
      estimate();
    };
    reader.onerror = () => setStatus(`Could not read ${file.name}.`, "error");
    reader.readAsArrayBuffer(file);
  });
  $("text").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) score();
  });
  $("score-btn").addEventListener("click", score);
  $("cancel-btn").addEventListener("click", cancelScore);
  let estimateTimer = null;
  $("text").addEventListener("input", () => {
    clearTimeout(estimateTimer);
    estimateTimer = setTimeout(estimate, 300);
  });
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
  $("model").addEventListener("change", estimate);
}

// `/?model=run:<id>` (the run page's "inspect with this checkpoint") or `/?model=<folder>`.
function preselectModel(selectId, folderId, spec) {
  const known = Array.from($(selectId).options).some((o) => o.value === spec);
  if (known) {
    $(selectId).value = spec;
  } else {
    $(selectId).value = "__folder__";
    $(folderId).value = spec;
    $(folderId).hidden = false;
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
      if (seed === null) { // say what is wrong with it; the marks stay as they were
        applyPolicy();
        return;
      }
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
  $("export-csv").addEventListener("click", () => state.result && exportCsv(state.result, readPolicy()));
  $("colour").addEventListener("change", () => setColour($("colour").value, state.colour.fixed));
  $("scale").addEventListener("change", () => setColour(state.colour.mode, $("scale").value === "fixed"));
  $("copy-link").addEventListener("click", copyLink);
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
applyUrl();
watchModel();
