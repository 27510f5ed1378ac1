/* The Inspect page: score a text (POST /api/score or /api/compare), render its tokens once, and
   let the policy controls toggle the marks with EntroPolicy (no model call). User text only ever
   reaches the DOM through textContent. */
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const DATA = JSON.parse($("inspect-data").textContent);
  const POLICY = window.EntroPolicy;
  const N_BINS = 32;
  const VIRIDIS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884",
    "#44bf70", "#7ad151", "#bddf26", "#fde725"];
  const DIVERGING = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582",
    "#d6604d", "#b2182b"];
  const PANE_COLOURS = ["#2f5fd0", "#d0662f"];
  const TINT = 0.45; // share of white mixed into token backgrounds

  // Everything the page knows; `timings` is read by the benchmark and tests.
  const state = {
    result: null, // {mode, panes: [...], sameTokens, note, delta, deltaSummary}
    view: "side",
    draws: new Map(), // "n:seed" -> Promise<number[]>
    scale: { hmax: 1, dmax: 1 },
    lastPolicy: null,
    retryTimer: null,
    chartsPending: false,
    renderCount: 0,
    timings: {},
  };
  window.EntroInspect = { state: state, applyPolicy: () => applyPolicy(), currentPolicy: () => readPolicy() };

  // ---------------------------------------------------------------- colours

  function hexToRgb(hex) {
    const v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }

  function interpolate(stops, t) {
    const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
    const i = Math.min(Math.floor(x), stops.length - 2);
    const a = hexToRgb(stops[i]);
    const b = hexToRgb(stops[i + 1]);
    const f = x - i;
    return a.map((c, k) => Math.round(c + (b[k] - c) * f));
  }

  function luminance(rgb) {
    const lin = rgb.map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.04045) / 1.055, 2.4);
    });
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  }

  // Token backgrounds are the scale mixed with white: lightness stays monotone (the scale stays
  // perceptual) while dark text and the red drop marks remain readable on every bin.
  function tint(stops, t) {
    return interpolate(stops, t).map((c) => Math.round(c + (255 - c) * TINT));
  }

  // One CSS class per colour bin: rendering sets a class name, never a style per token.
  function installColourClasses() {
    const rules = [];
    const add = (prefix, stops) => {
      for (let b = 0; b < N_BINS; b++) {
        const rgb = tint(stops, b / (N_BINS - 1));
        const fg = luminance(rgb) > 0.18 ? "#111" : "#fff";
        rules.push(`.tokens .${prefix}${b}{background:rgb(${rgb.join(",")});color:${fg}}`);
      }
    };
    add("c", VIRIDIS);
    add("d", DIVERGING);
    const style = document.createElement("style");
    style.textContent = rules.join("\n");
    document.head.appendChild(style);
  }

  function gradientCss(stops) {
    const parts = [];
    for (let i = 0; i <= 10; i++) parts.push(`rgb(${tint(stops, i / 10).join(",")})`);
    return `linear-gradient(to right, ${parts.join(", ")})`;
  }

  // ---------------------------------------------------------------- helpers

  function fmt(x, digits = 3) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    if (!Number.isFinite(x)) return x > 0 ? "∞" : "−∞";
    const a = Math.abs(x);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
    return x.toFixed(digits);
  }

  function pct(part, whole) {
    return whole ? `${((100 * part) / whole).toFixed(1)}%` : "–";
  }

  // Whitespace made visible for the tooltip and table; the token view keeps the real text.
  function visible(text) {
    if (text === "") return "(empty piece)";
    return text.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥");
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setStatus(message, kind) {
    const node = $("score-status");
    node.textContent = message;
    node.dataset.kind = kind || "";
  }

  async function fetchJSON(url, options) {
    const response = await fetch(url, options);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    return { ok: response.ok, status: response.status, body: body,
      retryAfter: Number(response.headers.get("Retry-After")) || 0 };
  }

  function detailOf(res) {
    const d = res.body && res.body.detail;
    if (typeof d === "string") return d;
    if (d) return JSON.stringify(d);
    return `request failed (HTTP ${res.status})`;
  }

  // ---------------------------------------------------------------- controls

  function modelSpec(selectId, folderId) {
    const value = $(selectId).value;
    if (value === "__folder__") return $(folderId).value.trim() || null;
    return value || null;
  }

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
    $("quantile").value = d.quantile;
    $("rate-max").value = d.rate_max;
    $("schedule").value = d.schedule;
    $("steepness").value = d.steepness;
    $("midpoint").value = d.midpoint;
    $("drop-mode").value = d.drop_mode;
    $("seed").value = d.seed;
    if (d.threshold !== null) $("threshold").value = d.threshold;
    updateOutputs();
  }

  function updateOutputs() {
    const p = readPolicy();
    $("quantile-out").textContent = p.config.quantile.toFixed(2);
    $("threshold-out").textContent = num("threshold").toFixed(2);
    $("rate-max-out").textContent = p.config.rate_max.toFixed(2);
    $("steepness-out").textContent = p.config.steepness.toFixed(1);
    $("midpoint-out").textContent = p.config.midpoint.toFixed(2);
    $("progress-out").textContent = `${p.progress.toFixed(2)} → r(s) = ${POLICY.dropRate(p.progress, p.config).toFixed(3)}`;
    $("quantile-row").hidden = p.config.selection !== "quantile";
    $("threshold-row").hidden = p.config.selection !== "threshold";
    document.querySelector(".sigmoid-only").hidden = p.config.schedule !== "sigmoid";
  }

  // ---------------------------------------------------------------- scoring

  function draws(n, seed) {
    const key = `${n}:${seed}`;
    if (!state.draws.has(key)) {
      const promise = fetchJSON(`/api/draws?n=${n}&seed=${seed}`).then((res) => {
        if (!res.ok) {
          state.draws.delete(key);
          throw new Error(detailOf(res));
        }
        return res.body.u;
      });
      state.draws.set(key, promise);
    }
    return state.draws.get(key);
  }

  async function attachDraws(seed) {
    if (!state.result) return;
    await Promise.all(state.result.panes.map(async (pane) => {
      pane.u = await draws(pane.entropies.length, seed);
    }));
  }

  async function score() {
    clearTimeout(state.retryTimer);
    const text = $("text").value;
    if (!text) {
      setStatus("Paste, upload or pick some text first.", "error");
      return;
    }
    const compare = $("compare-on").checked;
    const specA = modelSpec("model", "model-folder");
    const topK = Number($("top-k").value) || 0;
    let url = "/api/score";
    let body = { text: text, model: specA, top_k: topK };
    if (compare) {
      const specB = modelSpec("model-b", "model-b-folder") || DATA.model.spec;
      url = "/api/compare";
      body = { text: text, model_a: specA, model_b: specB, top_k: topK };
    }
    $("score-btn").disabled = true;
    setStatus("Scoring…", "busy");
    const t0 = performance.now();
    let res;
    try {
      res = await fetchJSON(url, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body) });
    } catch (err) {
      $("score-btn").disabled = false;
      setStatus(`The server did not answer (${err}).`, "error");
      return;
    }
    $("score-btn").disabled = false;
    if (res.status === 503 && res.retryAfter) {
      setStatus(`${detailOf(res)} (retrying in ${res.retryAfter} s)`, "busy");
      state.retryTimer = setTimeout(score, res.retryAfter * 1000);
      return;
    }
    if (!res.ok) {
      setStatus(detailOf(res), "error");
      return;
    }
    const t1 = performance.now();
    const result = compare ? compareResult(res.body) : singleResult(res.body);
    state.result = result;
    try {
      await attachDraws(readPolicy().config.seed);
    } catch (err) {
      setStatus(String(err.message || err), "error");
      return;
    }
    renderResult();
    const t2 = performance.now();
    state.timings.scoreMs = t1 - t0;
    state.timings.renderMs = t2 - t1;
    state.timings.totalMs = t2 - t0;
    const n = result.panes[0].score.n_tokens;
    setStatus(`Scored ${n} tokens in ${((t1 - t0) / 1000).toFixed(2)} s; drawn in ${Math.round(t2 - t1)} ms.`, "ok");
  }

  function makePane(score, label) {
    return { score: score, label: label, entropies: score.tokens.map((t) => t.entropy), u: null,
      spans: null, baseClass: null, marks: null, sel: null };
  }

  function singleResult(score) {
    return { mode: "single", panes: [makePane(score, score.model)], sameTokens: false, note: null,
      delta: null, deltaSummary: null };
  }

  function compareResult(body) {
    return { mode: "compare",
      panes: [makePane(body.a, `A: ${body.a.model}`), makePane(body.b, `B: ${body.b.model}`)],
      sameTokens: body.same_tokens, note: body.note, delta: body.delta,
      deltaSummary: body.delta_summary };
  }

  // ---------------------------------------------------------------- token view

  function entropyBin(e) {
    if (e === null) return null;
    return Math.min(N_BINS - 1, Math.max(0, Math.round((e / state.scale.hmax) * (N_BINS - 1))));
  }

  function deltaBin(d) {
    if (d === null) return null;
    const t = (d / state.scale.dmax + 1) / 2;
    return Math.min(N_BINS - 1, Math.max(0, Math.round(t * (N_BINS - 1))));
  }

  function computeScale(result) {
    let hmax = 0;
    for (const pane of result.panes) {
      for (const e of pane.entropies) if (e !== null && e > hmax) hmax = e;
    }
    let dmax = 0;
    if (result.delta) for (const d of result.delta) if (d !== null && Math.abs(d) > dmax) dmax = Math.abs(d);
    state.scale = { hmax: Math.max(0.5, Math.ceil(hmax * 2) / 2), dmax: Math.max(0.1, dmax) };
  }

  function paneShown(result) {
    // Difference view: one pane coloured by B - A; marks follow A's entropies.
    if (result.mode === "compare" && result.sameTokens && state.view === "delta") return [result.panes[0]];
    return result.panes;
  }

  function renderPane(pane, index, useDelta) {
    const box = el("div", "pane");
    box.dataset.pane = String(index);
    const head = el("div", "pane-head");
    head.appendChild(el("strong", "", useDelta ? "Entropy difference B − A (marks: A's policy)" : pane.label));
    head.appendChild(el("span", "hint", `${pane.score.n_tokens} tokens · ${pane.score.spec}`));
    box.appendChild(head);
    const tokens = el("div", "tokens");
    tokens.setAttribute("role", "group");
    tokens.setAttribute("aria-label", `Tokens of ${pane.label}; arrow keys move between tokens`);
    const frag = document.createDocumentFragment();
    const spans = new Array(pane.score.tokens.length);
    const base = new Array(spans.length);
    const delta = state.result.delta;
    pane.score.tokens.forEach((tok, i) => {
      const span = document.createElement("span");
      const bin = useDelta ? deltaBin(delta[i]) : entropyBin(tok.entropy);
      let cls = bin === null ? "tok none" : `tok ${useDelta ? "d" : "c"}${bin}`;
      if (tok.text.includes("\n")) cls += " nl";
      if (tok.text === "") cls += " empty";
      span.className = cls;
      span.textContent = tok.text; // never innerHTML: the text is the user's
      span.dataset.i = String(i);
      span.tabIndex = i === 0 ? 0 : -1;
      base[i] = cls;
      spans[i] = span;
      frag.appendChild(span);
    });
    tokens.appendChild(frag);
    box.appendChild(tokens);
    pane.spans = spans;
    pane.baseClass = base;
    pane.marks = new Uint8Array(spans.length); // 0 none, 1 candidate kept, 2 dropped
    pane.useDelta = useDelta;
    return box;
  }

  function renderResult() {
    const result = state.result;
    computeScale(result);
    setThresholdRange();
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
    state.lastPolicy = null;
    applyPolicy();
    drawCharts();
    state.renderCount += 1;
    $("results").dataset.rendered = String(state.renderCount);
  }

  function renderPanes() {
    const result = state.result;
    const shown = paneShown(result);
    const useDelta = shown.length === 1 && result.mode === "compare";
    const container = $("panes");
    container.replaceChildren();
    container.classList.toggle("two", shown.length === 2);
    for (const pane of result.panes) pane.spans = null;
    shown.forEach((pane, i) => container.appendChild(renderPane(pane, i, useDelta)));
    renderLegend(useDelta);
  }

  function renderLegend(useDelta) {
    const legend = $("legend");
    legend.replaceChildren();
    const scale = el("div", "scale");
    const bar = el("span", "bar");
    bar.style.background = gradientCss(useDelta ? DIVERGING : VIRIDIS);
    const lo = useDelta ? `${fmt(-state.scale.dmax, 1)}` : "0";
    const hi = useDelta ? `+${fmt(state.scale.dmax, 1)} nats` : `${fmt(state.scale.hmax, 1)} nats`;
    scale.appendChild(el("span", "end", useDelta ? `B more certain ${lo}` : `${lo} predictable`));
    scale.appendChild(bar);
    scale.appendChild(el("span", "end", useDelta ? `${hi} B less certain` : `${hi} uncertain`));
    legend.appendChild(scale);
    const marks = el("div", "marks");
    const mode = readPolicy().config.drop_mode;
    const dropText = { loss: "dropped: left out of the loss", input: "dropped: input replaced by the drop token",
      both: "dropped: input replaced and left out of the loss" }[mode];
    const sample = (cls, label) => {
      const item = el("span", "mark-item");
      item.appendChild(el("span", `tok sample ${cls}`, "tok"));
      item.appendChild(el("span", "", label));
      marks.appendChild(item);
    };
    sample("drop", dropText);
    sample("cand", "candidate, kept this time");
    sample("none", "first token: no prediction");
    legend.appendChild(marks);
  }

  // ---------------------------------------------------------------- policy (the fast path)

  function applyPolicy() {
    const t0 = performance.now();
    updateOutputs();
    const result = state.result;
    if (!result) return;
    const p = readPolicy();
    for (const pane of result.panes) {
      if (!pane.u) continue;
      pane.sel = POLICY.selectDrops(pane.entropies, pane.u, p.config, p.progress);
      if (!pane.spans) continue;
      // Only the tokens whose mark changed are touched.
      const { candidate, dropped } = pane.sel;
      const marks = pane.marks;
      for (let i = 0; i < marks.length; i++) {
        const m = dropped[i] ? 2 : candidate[i] ? 1 : 0;
        if (m !== marks[i]) {
          marks[i] = m;
          pane.spans[i].className = pane.baseClass[i] + (m === 2 ? " drop" : m === 1 ? " cand" : "");
        }
      }
    }
    if (state.lastPolicy && state.lastPolicy.config.drop_mode !== p.config.drop_mode) {
      renderLegend(result.mode === "compare" && paneShown(result).length === 1);
    }
    state.lastPolicy = p;
    renderSummary(p);
    state.timings.policyMs = performance.now() - t0;
    scheduleCharts();
  }

  function renderSummary(p) {
    const result = state.result;
    const box = $("summary");
    box.replaceChildren();
    const table = el("table", "numbers");
    const head = el("tr");
    ["", "tokens", "mean entropy", "perplexity", "τ (cut)", "r(s)", "candidates", "dropped"].forEach((h) =>
      head.appendChild(el("th", "", h)));
    table.appendChild(head);
    for (const pane of result.panes) {
      const sel = pane.sel;
      const nScored = pane.entropies.filter((e) => e !== null).length;
      const row = el("tr");
      row.appendChild(el("th", "", pane.label));
      row.appendChild(el("td", "", String(pane.score.n_tokens)));
      row.appendChild(el("td", "", `${fmt(pane.score.summary.mean_entropy)} nats`));
      row.appendChild(el("td", "", fmt(pane.score.summary.perplexity, 2)));
      row.appendChild(el("td", "", sel ? `${fmt(sel.tau)} nats` : "–"));
      row.appendChild(el("td", "", sel ? fmt(sel.rate) : "–"));
      const cand = el("td", "", sel ? `${pct(sel.nCandidates, nScored)} (${sel.nCandidates})` : "–");
      const drop = el("td", "", sel ? `${pct(sel.nDropped, nScored)} (${sel.nDropped})` : "–");
      cand.dataset.field = "candidates";
      drop.dataset.field = "dropped";
      row.appendChild(cand);
      row.appendChild(drop);
      table.appendChild(row);
    }
    box.appendChild(table);
    const foot = el("p", "hint", `Percentages are of the tokens that have a prediction (all but the first). ` +
      `Drop mode “${p.config.drop_mode}”, seed ${p.config.seed}, progress s = ${p.progress.toFixed(2)}.`);
    if (result.deltaSummary) {
      const ds = result.deltaSummary;
      foot.textContent += ` Mean entropy change B − A: ${fmt(ds.mean_delta)} nats ` +
        `(mean |Δ| ${fmt(ds.mean_abs_delta)}); B is more certain on ${pct(ds.fraction_lower_in_b, 1)} of tokens.`;
    }
    box.appendChild(foot);
  }

  // ---------------------------------------------------------------- charts (Plotly, off the fast path)

  const PLOT_CONFIG = { displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"] };
  const FONT = { family: "system-ui, sans-serif", size: 12 };

  function cutShapes(axis) {
    const shapes = [];
    state.result.panes.forEach((pane, k) => {
      if (!pane.sel || !Number.isFinite(pane.sel.tau)) return;
      const line = { color: PANE_COLOURS[k], width: 2, dash: "dash" };
      if (axis === "x") shapes.push({ type: "line", xref: "x", yref: "paper", x0: pane.sel.tau, x1: pane.sel.tau, y0: 0, y1: 1, line: line });
      else shapes.push({ type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: pane.sel.tau, y1: pane.sel.tau, line: line });
    });
    return shapes;
  }

  function drawCharts() {
    if (!window.Plotly) return;
    const result = state.result;
    const compare = result.mode === "compare";
    const hist = result.panes.map((pane, k) => ({
      type: "histogram", x: pane.entropies.filter((e) => e !== null), name: pane.label,
      marker: { color: PANE_COLOURS[k] }, opacity: compare ? 0.55 : 0.85, nbinsx: 60,
    }));
    Plotly.newPlot("hist-chart", hist, {
      title: { text: "Token entropies (dashed: the cut τ)", font: FONT }, font: FONT, barmode: "overlay",
      margin: { l: 50, r: 10, t: 40, b: 40 }, height: 280, showlegend: compare,
      xaxis: { title: { text: "entropy (nats)" } }, yaxis: { title: { text: "tokens" } },
      shapes: cutShapes("x"), legend: { orientation: "h", y: -0.25 },
    }, PLOT_CONFIG);
    let traces;
    const x = result.panes[0].entropies.map((_, i) => i);
    if (compare && result.sameTokens && state.view === "delta") {
      traces = [{ type: "scattergl", mode: "lines", x: x, y: result.delta, name: "B − A",
        line: { color: "#6a3d9a", width: 1 } }];
    } else {
      traces = result.panes.map((pane, k) => ({ type: "scattergl", mode: "lines", name: pane.label,
        x: pane.entropies.map((_, i) => i), y: pane.entropies, line: { color: PANE_COLOURS[k], width: 1 } }));
    }
    const delta = compare && result.sameTokens && state.view === "delta";
    Plotly.newPlot("pos-chart", traces, {
      title: { text: delta ? "Entropy difference per position" : "Entropy per position (dashed: τ)", font: FONT },
      font: FONT, margin: { l: 50, r: 10, t: 40, b: 40 }, height: 280, showlegend: compare && !delta,
      xaxis: { title: { text: "token position" } },
      yaxis: { title: { text: delta ? "Δ entropy (nats)" : "entropy (nats)" } },
      shapes: delta ? [] : cutShapes("y"), legend: { orientation: "h", y: -0.25 },
    }, PLOT_CONFIG);
    drawSchedule();
  }

  function drawSchedule() {
    if (!window.Plotly) return;
    const p = readPolicy();
    const s = [];
    const r = [];
    for (let i = 0; i <= 100; i++) {
      s.push(i / 100);
      r.push(POLICY.dropRate(i / 100, p.config));
    }
    const now = POLICY.dropRate(p.progress, p.config);
    Plotly.react("schedule-chart", [
      { type: "scatter", mode: "lines", x: s, y: r, line: { color: "#2f5fd0" }, hoverinfo: "x+y" },
      { type: "scatter", mode: "markers", x: [p.progress], y: [now], marker: { size: 10, color: "#c23b22" },
        hoverinfo: "x+y" },
    ], {
      title: { text: "drop rate r(s) over training", font: FONT }, font: FONT, height: 170,
      margin: { l: 40, r: 10, t: 30, b: 30 }, showlegend: false,
      xaxis: { range: [0, 1], title: { text: "" } }, yaxis: { range: [0, 1.02] },
    }, { displayModeBar: false, responsive: true, staticPlot: false });
  }

  // Charts follow the sliders once per frame, after the marks have been painted.
  function scheduleCharts() {
    if (state.chartsPending) return;
    state.chartsPending = true;
    requestAnimationFrame(() => {
      state.chartsPending = false;
      if (!window.Plotly) return;
      drawSchedule();
      if (!state.result || !$("hist-chart").data) return;
      Plotly.relayout("hist-chart", { shapes: cutShapes("x") });
      const delta = state.result.mode === "compare" && state.result.sameTokens && state.view === "delta";
      if (!delta) Plotly.relayout("pos-chart", { shapes: cutShapes("y") });
    });
  }

  // ---------------------------------------------------------------- tooltip and keyboard

  function tokenAt(target) {
    const span = target.closest && target.closest(".tok[data-i]");
    if (!span) return null;
    const paneBox = span.closest(".pane");
    const shown = paneShown(state.result);
    const pane = shown[Number(paneBox.dataset.pane)];
    return { span: span, pane: pane, i: Number(span.dataset.i) };
  }

  function showTip(hit) {
    const tip = $("tip");
    const tok = hit.pane.score.tokens[hit.i];
    tip.replaceChildren();
    tip.appendChild(el("div", "tip-token", visible(tok.text)));
    const mark = hit.pane.marks ? hit.pane.marks[hit.i] : 0;
    const status = tok.entropy === null ? "first token: no prediction, never dropped"
      : mark === 2 ? "dropped by the policy" : mark === 1 ? "candidate (entropy ≤ τ), kept this time"
      : "kept (entropy above τ)";
    tip.appendChild(el("div", `tip-status m${mark}`, status));
    const dl = el("dl");
    const add = (k, v) => { dl.appendChild(el("dt", "", k)); dl.appendChild(el("dd", "", v)); };
    add("position", String(tok.index));
    add("id", String(tok.id));
    add("entropy", tok.entropy === null ? "–" : `${fmt(tok.entropy)} nats`);
    add("surprisal", tok.surprisal === null ? "–" : `${fmt(tok.surprisal)} nats`);
    add("probability", fmt(tok.prob, 4));
    add("rank", tok.rank === null ? "–" : String(tok.rank));
    if (state.result.delta && state.result.sameTokens) {
      const other = state.result.panes[1].score.tokens[hit.i];
      add("entropy B", other.entropy === null ? "–" : `${fmt(other.entropy)} nats`);
      add("Δ B − A", fmt(state.result.delta[hit.i]));
    }
    tip.appendChild(dl);
    if (tok.top.length) {
      tip.appendChild(el("div", "tip-sub", `top ${tok.top.length} predictions`));
      const list = el("ol", "tip-top");
      for (const alt of tok.top) {
        const li = el("li", alt.id === tok.id ? "hit" : "");
        // The row's background is a bar as long as the probability.
        const w = Math.round((alt.prob || 0) * 100);
        li.style.background = `linear-gradient(to right, rgba(110,168,254,.28) ${w}%, transparent ${w}%)`;
        li.appendChild(el("code", "", visible(alt.text)));
        li.appendChild(el("span", "p", fmt(alt.prob, 3)));
        list.appendChild(li);
      }
      tip.appendChild(list);
    }
    tip.hidden = false;
    const r = hit.span.getBoundingClientRect();
    const w = tip.offsetWidth;
    const h = tip.offsetHeight;
    let left = Math.min(r.left, window.innerWidth - w - 8);
    let top = r.bottom + 6;
    if (top + h > window.innerHeight - 8) top = Math.max(8, r.top - h - 6);
    tip.style.left = `${Math.max(8, left)}px`;
    tip.style.top = `${top}px`;
  }

  function hideTip() {
    $("tip").hidden = true;
  }

  function initTokenEvents() {
    const panes = $("panes");
    panes.addEventListener("mouseover", (ev) => {
      const hit = state.result && tokenAt(ev.target);
      if (hit) showTip(hit);
    });
    panes.addEventListener("mouseleave", hideTip);
    panes.addEventListener("focusin", (ev) => {
      const hit = state.result && tokenAt(ev.target);
      if (!hit) return;
      // Roving tabindex: one token per pane is in the tab order, arrows move within the pane.
      for (const s of hit.span.parentNode.querySelectorAll('.tok[tabindex="0"]')) s.tabIndex = -1;
      hit.span.tabIndex = 0;
      showTip(hit);
    });
    panes.addEventListener("focusout", (ev) => {
      if (!ev.relatedTarget || !ev.relatedTarget.closest || !ev.relatedTarget.closest(".tok")) hideTip();
    });
    panes.addEventListener("keydown", (ev) => {
      const hit = state.result && tokenAt(ev.target);
      if (!hit) return;
      const spans = hit.pane.spans;
      let next = null;
      if (ev.key === "ArrowRight" || ev.key === "ArrowDown") next = Math.min(spans.length - 1, hit.i + 1);
      else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") next = Math.max(0, hit.i - 1);
      else if (ev.key === "Home") next = 0;
      else if (ev.key === "End") next = spans.length - 1;
      else if (ev.key === "Escape") hideTip();
      if (next !== null) {
        ev.preventDefault();
        spans[next].focus();
      }
    });
    document.addEventListener("scroll", hideTip, true);
  }

  // ---------------------------------------------------------------- export

  function exportRows() {
    const result = state.result;
    const a = result.panes[0];
    const b = result.mode === "compare" && result.sameTokens ? result.panes[1] : null;
    return a.score.tokens.map((t, i) => {
      const row = { index: t.index, id: t.id, text: t.text, entropy: t.entropy, surprisal: t.surprisal,
        prob: t.prob, rank: t.rank, candidate: Boolean(a.sel.candidate[i]), dropped: Boolean(a.sel.dropped[i]),
        top: t.top };
      if (b) {
        row.entropy_b = b.entropies[i];
        row.delta = result.delta[i];
        row.dropped_b = Boolean(b.sel.dropped[i]);
      }
      return row;
    });
  }

  function download(name, type, content) {
    const url = URL.createObjectURL(new Blob([content], { type: type }));
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  function csvCell(v) {
    if (v === null || v === undefined) return "";
    const s = typeof v === "string" ? v : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }

  function exportCsv() {
    if (!state.result) return;
    const rows = exportRows();
    const cols = Object.keys(rows[0]).filter((k) => k !== "top");
    const lines = [cols.concat(["top"]).join(",")];
    for (const r of rows) {
      const top = r.top.map((alt) => `${alt.text}:${fmt(alt.prob, 4)}`).join(" | ");
      lines.push(cols.map((c) => csvCell(r[c])).concat([csvCell(top)]).join(","));
    }
    download("entrodrop-tokens.csv", "text/csv", lines.join("\r\n") + "\r\n");
  }

  function exportJson() {
    if (!state.result) return;
    const p = readPolicy();
    const a = state.result.panes[0];
    const doc = { model: a.score.model, spec: a.score.spec, policy: p.config, progress: p.progress,
      tau: a.sel.tau, rate: a.sel.rate, summary: a.score.summary, tokens: exportRows() };
    if (state.result.mode === "compare") {
      const b = state.result.panes[1];
      doc.model_b = b.score.model;
      doc.spec_b = b.score.spec;
      doc.same_tokens = state.result.sameTokens;
      doc.note = state.result.note;
    }
    download("entrodrop-tokens.json", "application/json", JSON.stringify(doc, null, 1));
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
      if (file.size > DATA.limits.max_upload_bytes) {
        setStatus(`${file.name} is ${file.size} bytes; the limit is ${DATA.limits.max_upload_bytes}.`, "error");
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
    const pairs = [["model", "model-folder"], ["model-b", "model-b-folder"]];
    for (const [sel, folder] of pairs) {
      $(sel).addEventListener("change", () => {
        $(folder).hidden = $(sel).value !== "__folder__";
        if (!$(folder).hidden) $(folder).focus();
      });
    }
    $("compare-on").addEventListener("change", () => {
      $("compare-box").hidden = !$("compare-on").checked;
    });
  }

  function initPolicy() {
    const fast = ["quantile", "threshold", "rate-max", "steepness", "midpoint", "progress"];
    for (const id of fast) $(id).addEventListener("input", applyPolicy);
    for (const id of ["schedule", "drop-mode"]) $(id).addEventListener("change", applyPolicy);
    for (const radio of document.querySelectorAll('input[name="selection"]')) {
      radio.addEventListener("change", () => {
        // Start the threshold where the quantile cut was, so the marks do not jump.
        const pane = state.result && state.result.panes[0];
        if (radio.value === "threshold" && pane && pane.sel && Number.isFinite(pane.sel.tau)) {
          $("threshold").value = String(Math.round(pane.sel.tau / 0.05) * 0.05);
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
        if (!state.result) return;
        renderPanes();
        state.lastPolicy = null;
        applyPolicy();
        drawCharts();
      });
    }
    $("export-csv").addEventListener("click", exportCsv);
    $("export-json").addEventListener("click", exportJson);
  }

  function setThresholdRange() {
    $("threshold").max = String(Math.max(1, Math.ceil(state.scale.hmax)));
  }

  async function watchModel() {
    if (DATA.model.model_loaded) return;
    for (;;) {
      await new Promise((r) => setTimeout(r, 1500));
      const res = await fetchJSON("/api/health").catch(() => null);
      if (!res || !res.ok) continue;
      if (res.body.model_loaded) {
        $("loading-note").hidden = true;
        return;
      }
      if (res.body.state === "error") {
        $("loading-note").textContent = `The model did not load: ${res.body.error}`;
        $("loading-note").classList.add("error");
        return;
      }
    }
  }

  installColourClasses();
  initControls();
  initText();
  initModelPickers();
  initPolicy();
  initTokenEvents();
  drawSchedule();
  watchModel();
})();
