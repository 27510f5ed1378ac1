// Runs pages: the new-run form, the runs list, a run's live curves, and the compare page.
// Each page embeds its JSON twin in a <script type="application/json"> and redraws from the API.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const ACTIVE = ["queued", "running"];
const COLORS = ["#2f5fd0", "#e07b1a", "#2a9d55", "#c23b22", "#8a4fc4", "#8c564b", "#d04fa0", "#6b6b70"];
const DASHES = ["solid", "dash", "dot", "dashdot"];
const LABELS = {
  "train/loss": "train",
  "eval/loss": "held-out: all tokens",
  "eval/loss_low_entropy": "held-out: low-entropy",
  "eval/loss_high_entropy": "held-out: high-entropy",
  "general/loss": "general text",
  "drop/rate_scheduled": "scheduled r(s)",
  "drop/fraction_realised": "realised fraction",
  "drop/entropy_dropped": "dropped tokens",
  "drop/entropy_kept": "kept tokens",
  "train/learning_rate": "learning rate",
};

function pageData(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

async function api(method, url, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  let data = null;
  try { data = await res.json(); } catch (e) { data = { detail: res.statusText }; }
  return { ok: res.ok, status: res.status, data };
}

// ---------------------------------------------------------------- formatting (mirrors _runs_macros.html)

const fmtLoss = (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(4));

function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function renderBadge(el, r) {
  const badge = el.querySelector(".badge") || el;
  badge.className = `badge status-${r.status}`;
  badge.dataset.status = r.status;
  badge.textContent = r.status + (r.cancel_requested && r.status === "running" ? " (stopping)" : "");
}

function renderProgress(el, r, eta) {
  const pct = Math.round(r.progress * 1000) / 10;
  const bar = el.querySelector(".bar");
  bar.style.width = `${pct}%`;
  bar.className = `bar status-${r.status}`;
  el.querySelector(".progress").setAttribute("aria-valuenow", String(Math.round(pct)));
  el.querySelector(".steps").textContent = `${r.step}${r.total_steps ? " / " + r.total_steps : ""} steps`;
  const left = eta === undefined ? r.eta_s : eta;
  el.querySelector(".eta").textContent =
    left !== null && left !== undefined ? `· ETA ${fmtDuration(left)}` : r.status === "running" ? "· starting" : "";
}

function renderRow(tr, r) {
  renderBadge(tr.querySelector(".status-cell"), r);
  renderProgress(tr.querySelector(".progress-cell"), r);
  const best = tr.querySelector(".best");
  if (best) best.textContent = fmtLoss(r.best_eval_loss);
  const fin = tr.querySelector(".final");
  if (fin) fin.textContent = fmtLoss(r.final_eval_loss);
}

function localTimes() {
  for (const el of $$("[data-time]")) {
    const t = Number(el.dataset.time);
    if (t) el.textContent = new Date(t * 1000).toLocaleString();
  }
}

// ---------------------------------------------------------------- curves

class Series {
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
function drawPanels(panels, runs, compare) {
  if (typeof Plotly === "undefined") return;
  const opts = chartOptions();
  for (const panel of panels) {
    const traces = [];
    runs.forEach((run, ri) => panel.names.forEach((name, ni) => {
      const [xs, ys] = run.series.xy(name);
      if (!xs.length) return;
      const color = compare ? COLORS[ri % COLORS.length] : COLORS[ni % COLORS.length];
      const label = compare ? `${run.label} · ${LABELS[name] || name}` : LABELS[name] || name;
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

function chartControls(redraw) {
  const slider = $("#smoothing");
  if (slider) slider.addEventListener("input", () => { $("#smoothing-value").textContent = slider.value; redraw(); });
  const log = $("#log-scale");
  if (log) log.addEventListener("change", redraw);
}

function throttled(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fn(); });
  };
}

// ---------------------------------------------------------------- run page

function initRun(data) {
  const series = new Series();
  const redraw = throttled(() => drawPanels(data.panels, [{ id: data.id, label: data.id, series }], false));
  chartControls(redraw);
  let source = null;
  let eta = { value: data.eta_s, at: Date.now() };
  let current = data;
  const live = $("#live-state");

  function update(r) {
    current = r;
    eta = { value: r.eta_s, at: Date.now() };
    renderBadge($("#run-status"), r);
    renderProgress($("#run-progress"), r);
    $("#cancel-run").hidden = !r.can_cancel;
    $("#resume-run").hidden = !r.can_resume;
    $("#best-loss").textContent = fmtLoss(r.best_eval_loss);
    $("#final-loss").textContent = fmtLoss(r.final_eval_loss);
    $("#checkpoint-step").textContent = r.checkpoint_step === null ? "none yet" : `step ${r.checkpoint_step}`;
    $("#elapsed").textContent = fmtDuration(r.elapsed_s) || "—";
    const inspect = $("#inspect-link");
    inspect.hidden = !r.links.inspect;
    if (r.links.inspect) inspect.href = r.links.inspect;
    const err = $("#run-error");
    err.hidden = !r.error;
    err.textContent = r.error || "";
  }

  function connect(fresh) {
    if (source) source.close();
    if (fresh) series.clear();
    source = new EventSource(data.links.events);
    live.textContent = "live";
    source.addEventListener("metrics", (e) => { series.add(JSON.parse(e.data)); redraw(); });
    source.addEventListener("status", (e) => update(JSON.parse(e.data)));
    source.addEventListener("log", (e) => {
      const d = JSON.parse(e.data);
      const pre = $("#log-tail");
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = d.log.join("\n");
      if (atBottom) pre.scrollTop = pre.scrollHeight;
      if (d.output.length) {
        $("#output-tail").textContent = d.output.join("\n");
        $("#output-details").open = true;
      }
    });
    source.addEventListener("end", () => {
      source.close();
      source = null;
      live.textContent = `${current.status}: curves complete`;
    });
    // The server ends each stream after a while and EventSource reconnects by itself (sending
    // Last-Event-ID): only say so when it stays disconnected.
    source.onopen = () => { live.textContent = "live"; };
    source.onerror = () => {
      const s = source;
      setTimeout(() => { if (s && source === s && s.readyState !== 1) live.textContent = "reconnecting…"; }, 3000);
    };
  }

  async function act(action) {
    const res = await api("POST", `/api/runs/${data.id}/${action}`);
    if (!res.ok) {
      $("#run-error").hidden = false;
      $("#run-error").textContent = res.data.detail;
      return;
    }
    update(res.data);
    if (action === "resume") connect(true);
  }
  $("#cancel-run").addEventListener("click", () => act("cancel"));
  $("#resume-run").addEventListener("click", () => act("resume"));
  setInterval(() => {
    if (current.status !== "running" || eta.value === null || eta.value === undefined) return;
    renderProgress($("#run-progress"), current, eta.value - (Date.now() - eta.at) / 1000);
  }, 1000);
  const pre = $("#log-tail");
  pre.scrollTop = pre.scrollHeight;
  connect(false);
}

// ---------------------------------------------------------------- runs list

function initRunsList(data) {
  localTimes();
  const picks = () => $$(".pick:checked").map((c) => c.value);
  const button = $("#compare-selected");
  for (const c of $$(".pick")) c.addEventListener("change", () => { button.disabled = picks().length < 2; });
  button.addEventListener("click", () => { location.href = `/compare?runs=${picks().join(",")}`; });
  let runs = data.runs;
  async function poll() {
    if (!runs.some((r) => ACTIVE.includes(r.status))) return;
    const res = await api("GET", "/api/runs");
    if (res.ok) {
      const shown = $$("tr[data-run-id]").map((tr) => tr.dataset.runId).join();
      if (res.data.runs.map((r) => r.id).join() !== shown) { location.reload(); return; }
      runs = res.data.runs;
      for (const r of runs) renderRow($(`tr[data-run-id="${r.id}"]`), r);
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
}

// ---------------------------------------------------------------- compare page

function initCompare(data) {
  $$(".swatch").forEach((s) => { s.style.background = COLORS[Number(s.dataset.index) % COLORS.length]; });
  let runs = [];
  function load(d) {
    runs = d.runs.map((r) => {
      const series = new Series();
      series.add(d.metrics[r.id] || []);
      return { id: r.id, label: `${r.method} ${r.id.slice(-4)}`, series };
    });
    d.runs.forEach((r, i) => {
      const tr = $(`tr[data-run-id="${r.id}"]`);
      renderBadge(tr.querySelector(".status-cell"), r);
      renderProgress(tr.querySelector(".progress-cell"), r);
      tr.querySelector(".best").textContent = fmtLoss(d.table[i].best_eval_loss);
      for (const td of $$(".final-metric", tr)) td.textContent = fmtLoss(d.table[i].final[td.dataset.name]);
    });
  }
  const redraw = throttled(() => drawPanels(data.panels, runs, true));
  chartControls(redraw);
  load(data);
  redraw();
  const ids = data.runs.map((r) => r.id).join(",");
  let active = data.runs.some((r) => ACTIVE.includes(r.status));
  const live = $("#live-state");
  async function poll() {
    if (!active) { live.textContent = ""; return; }
    live.textContent = "live: updating every 2 s";
    const res = await api("GET", `/api/compare?runs=${encodeURIComponent(ids)}`);
    if (res.ok) {
      load(res.data);
      redraw();
      active = res.data.runs.some((r) => ACTIVE.includes(r.status));
    }
    setTimeout(poll, 2000);
  }
  poll();
}

// ---------------------------------------------------------------- new-run form

function setPath(obj, path, value) {
  const parts = path.split(".");
  let o = obj;
  for (const p of parts.slice(0, -1)) o = o[p] = o[p] || {};
  o[parts[parts.length - 1]] = value;
}

function initNewRun(data) {
  const form = $("#run-form");
  let uploaded = null;
  const radio = (name) => ($(`input[name="${name}"]:checked`) || {}).value;

  function body() {
    const b = {};
    for (const el of $$("[data-field]", form)) {
      const kind = el.dataset.kind;
      let value;
      if (kind === "bool") value = el.checked;
      else if (kind === "select" || kind === "text") value = el.value;
      else if (el.validity && el.validity.badInput) value = "not a number";
      else if (el.value.trim() === "") {
        if (!el.dataset.nullable) continue; // missing: the server's default
        value = null;
      } else value = Number(el.value);
      setPath(b, el.dataset.field, value);
    }
    const mk = radio("model_kind");
    b.model = mk === "folder" ? $("#model-folder").value.trim() : mk === "run" ? $("#model-run").value : "default";
    const dk = radio("dataset_kind");
    b.dataset = dk === "upload" ? (uploaded ? uploaded.dataset : "") : dk === "path" ? $("#dataset-path").value.trim() : "python-reference";
    if (radio("launcher_kind") === "accelerate") {
      b.launcher = { kind: "accelerate", num_processes: Number($("#launcher-n").value) };
    } else b.launcher = { kind: "single", num_processes: 1 };
    const cmp = $("#f-compare").value;
    if (cmp) b.compare_with = cmp;
    return b;
  }

  function showErrors(errors, detail) {
    for (const el of $$(".field-error", form)) el.textContent = "";
    for (const el of $$(".invalid", form)) el.classList.remove("invalid");
    for (const err of errors || []) {
      let loc = (err.loc || []).map(String);
      let target = null;
      while (!target && loc.length) {
        target = $(`[data-error-for="${loc.join(".")}"]`, form);
        if (!target) loc = loc.slice(0, -1);
      }
      target = target || $('[data-error-for="body"]', form);
      target.textContent = target.textContent ? `${target.textContent}; ${err.msg}` : err.msg;
      const wrap = $(`[data-wrap="${loc.join(".")}"]`, form);
      if (wrap) wrap.classList.add("invalid");
    }
    if (detail && !(errors || []).length) $('[data-error-for="body"]', form).textContent = detail;
  }

  function localErrors(b) {
    if (radio("dataset_kind") === "upload" && !uploaded) return [{ loc: ["dataset"], msg: "choose a file to upload first" }];
    if (radio("model_kind") === "folder" && !b.model) return [{ loc: ["model"], msg: "type the checkpoint folder's path" }];
    if (radio("dataset_kind") === "path" && !b.dataset) return [{ loc: ["dataset"], msg: "type the file's path" }];
    return [];
  }

  function syncVisibility() {
    const method = $("#f-method").value;
    $("#entrodrop-params").hidden = !["entrodrop", "random"].includes(method);
    const baseline = !["entrodrop", "random", "none"].includes(method);
    $("#strength-wrap").hidden = !baseline;
    if (baseline) $("#f-baseline_strength").placeholder = `default ${data.baseline_strength_defaults[method]}`;
    const pair = $("#f-compare").value;
    $("#launch").textContent = pair ? `Launch ${method} + ${pair}` : "Launch run";
    const sel = $('[data-field="entrodrop.selection"]');
    if (sel) {
      $('[data-wrap="entrodrop.quantile"]').classList.toggle("dim", sel.value !== "quantile");
      $('[data-wrap="entrodrop.threshold"]').classList.toggle("dim", sel.value !== "threshold");
    }
  }

  let checkSeq = 0;
  async function check() {
    syncVisibility();
    const b = body();
    const local = localErrors(b);
    if (local.length) { showErrors(local); return false; }
    const seq = ++checkSeq;
    const res = await api("POST", "/api/runs/check", b);
    if (seq !== checkSeq) return res.ok; // a newer check is on its way
    if (!res.ok) { showErrors(res.data.errors, res.data.detail); return false; }
    showErrors([]);
    $("#cli-command").textContent = res.data.commands.join("\n");
    $("#config-json").textContent = res.data.config_json;
    return true;
  }
  let timer = null;
  const later = () => { clearTimeout(timer); timer = setTimeout(check, 250); };
  form.addEventListener("input", later);
  form.addEventListener("change", later);

  $("#dataset-file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    $('input[name="dataset_kind"][value="upload"]').checked = true;
    const status = $("#upload-status");
    status.textContent = `uploading ${file.name}…`;
    const fd = new FormData();
    fd.append("file", file);
    const res = await api("POST", "/api/uploads", fd);
    uploaded = res.ok ? res.data : null;
    status.textContent = res.ok ? `${res.data.name}: ${res.data.n_texts} texts, ${res.data.n_chars} characters` : "";
    if (!res.ok) showErrors([{ loc: ["dataset"], msg: res.data.detail }]);
    else check();
  });
  $("#dataset-path").addEventListener("focus", () => { $('input[name="dataset_kind"][value="path"]').checked = true; });
  $("#model-folder").addEventListener("focus", () => { $('input[name="model_kind"][value="folder"]').checked = true; });
  $("#model-run").addEventListener("focus", () => { $('input[name="model_kind"][value="run"]').checked = true; });
  $("#launcher-n").addEventListener("focus", () => { $('input[name="launcher_kind"][value="accelerate"]').checked = true; });
  $("#copy-config").addEventListener("click", (e) => {
    e.preventDefault();
    navigator.clipboard && navigator.clipboard.writeText($("#config-json").textContent);
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const b = body();
    const local = localErrors(b);
    if (local.length) { showErrors(local); return; }
    const button = $("#launch");
    button.disabled = true;
    $("#form-status").textContent = "launching…";
    const res = await api("POST", "/api/runs", b);
    if (res.ok) { location.href = res.data.url; return; }
    button.disabled = false;
    $("#form-status").textContent = "";
    showErrors(res.data.errors, res.data.detail);
  });

  $("#preview-button").addEventListener("click", async () => {
    const b = body();
    const local = localErrors(b);
    if (local.length) { showErrors(local); return; }
    const status = $("#preview-status");
    status.textContent = "scoring the first batch… (the first time loads the model)";
    $("#preview-button").disabled = true;
    let res = await api("POST", "/api/runs/preview", b);
    // 503: the model is still loading (or the scoring queue is full): wait and ask again.
    for (let tries = 0; res.status === 503 && tries < 60; tries++) {
      status.textContent = `${res.data.detail} (retrying)`;
      await new Promise((r) => setTimeout(r, 3000));
      res = await api("POST", "/api/runs/preview", b);
    }
    $("#preview-button").disabled = false;
    if (!res.ok) { status.textContent = ""; showErrors(res.data.errors, res.data.detail); return; }
    status.textContent = `${res.data.model} · τ = ${res.data.tau === null ? "—" : res.data.tau.toFixed(2)} nats`;
    renderPreview(res.data);
  });

  syncVisibility();
  check();
}

function renderPreview(p) {
  const tabs = $("#preview-points");
  const box = $("#preview");
  tabs.textContent = "";
  let selected = p.points.length - 1;
  function draw() {
    for (const [i, t] of $$("button", tabs).entries()) t.setAttribute("aria-selected", String(i === selected));
    box.textContent = "";
    if (!p.drops_apply) {
      const note = document.createElement("p");
      note.className = "muted";
      note.textContent = `The ${p.method} method drops no tokens; the batch trains as is.`;
      box.appendChild(note);
    }
    for (const row of p.rows) {
      const div = document.createElement("div");
      div.className = "preview-row";
      for (const t of row) {
        const span = document.createElement("span");
        span.className = "tok";
        if (t.entropy !== null && p.tau !== null && t.entropy <= p.tau) span.classList.add("candidate");
        if (t.dropped[selected]) span.classList.add("dropped");
        span.textContent = t.text;
        span.title = t.entropy === null ? "first token: no entropy" : `entropy ${t.entropy} nats`;
        div.appendChild(span);
      }
      box.appendChild(div);
    }
    const legend = document.createElement("p");
    legend.className = "muted small";
    legend.innerHTML = '<span class="tok candidate">candidate</span> low-entropy (≤ τ) · <span class="tok dropped">dropped</span> at this s. ' + p.note;
    box.appendChild(legend);
  }
  p.points.forEach((pt, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tab";
    b.setAttribute("role", "tab");
    b.dataset.progress = String(pt.progress);
    b.textContent = `s = ${pt.progress}: r = ${pt.rate.toFixed(3)}, ${pt.n_dropped} of ${p.n_tokens} dropped`;
    b.addEventListener("click", () => { selected = i; draw(); });
    tabs.appendChild(b);
  });
  draw();
}

// ---------------------------------------------------------------- boot

document.addEventListener("DOMContentLoaded", () => {
  let d;
  if ((d = pageData("form-data"))) initNewRun(d);
  else if ((d = pageData("run-data"))) initRun(d);
  else if ((d = pageData("compare-data"))) initCompare(d);
  else if ((d = pageData("runs-data"))) initRunsList(d);
});
