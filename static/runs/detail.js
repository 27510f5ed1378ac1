// The run page: live curves over server-sent events, status, cancel, resume or restart, rename, delete.

import { api } from "../common/api.js";
import { showBadge } from "../common/badges.js";
import { $, pageData, throttled } from "../common/dom.js";
import { fmtDuration, fmtLoss, fmtSize } from "../common/format.js";
import { renderBenchmarks } from "./benchmarks.js";
import { renderBest, renderStopped } from "./best.js";
import { chartControls, drawPanels, Series } from "./charts.js";
import { initEvaluate, renderEvaluate } from "./evaluate.js";
import { initExport, renderExport } from "./export.js";
import { renderProgress } from "./rows.js";

// Words for what each action does, asked before the ones that stop or remove something.
const CONFIRM = {
  cancel: "Stop this run? It saves no new checkpoint; a later resume continues from the last complete one.",
  delete: "Delete this run, its metrics and its folder (checkpoints and model included)? This cannot be undone.",
};

// The stage the training process names (loading model, scoring with the starting model k/n,
// training step k/n, evaluating, benchmarks) replaces the bare step count while it runs.
function renderStage(r) {
  if (r.status === "running" && r.stage) $("#run-progress .steps").textContent = r.stage;
}

// What training left (best evaluation, benchmarks, export) from the run's full detail.
function renderAfter(detail, finals) {
  renderBest(detail, finals, detail.facts);
  renderBenchmarks((detail.summary_file || {}).benchmarks);
  renderExport(detail);
  renderEvaluate(detail);
}

// The page's live state: the latest run record, its curves, the ETA's clock and the event source.
class RunPage {
  constructor(data) {
    this.data = data;
    this.current = data;
    this.series = new Series();
    this.eta = { value: data.eta_s, at: Date.now() };
    this.source = null;
    this.finals = { ...data.last_values }; // each metric's latest value (the best table's final)
    this.live = $("#live-state");
    const run = () => ({ id: data.id, label: data.id, series: this.series,
      attempt: Math.max(1, this.current.attempts), tokensPerStep: data.tokens_per_step });
    this.redraw = throttled(() => drawPanels(data.panels, [run()], false, data.facts));
  }

  // A new run record (from the events or an action's answer): every fact on the page follows it.
  update(r) {
    const attemptChanged = r.attempts !== this.current.attempts;
    this.current = r;
    this.eta = { value: r.eta_s, at: Date.now() };
    showBadge($("#run-status"), r, this.data.facts);
    renderProgress($("#run-progress"), r);
    renderStage(r);
    renderActions(r);
    renderFacts(r);
    renderStopped($("#stopped-early"), r);
    renderBest(r, this.finals, this.data.facts);
    renderEvaluate(r);
    if (attemptChanged) this.redraw(); // a new attempt: its curves replace the old ones
  }

  connect(fresh) {
    if (this.source) this.source.close();
    if (fresh) this.series.clear();
    const source = new EventSource(this.data.links.events);
    this.source = source;
    this.live.textContent = "live";
    source.addEventListener("metrics", (e) => {
      const rows = JSON.parse(e.data);
      this.series.add(rows);
      for (const row of rows) this.finals[row.name] = row.value;
      this.redraw();
      document.dispatchEvent(new CustomEvent("run:metrics", { detail: rows })); // the Tokens view
    });
    source.addEventListener("status", (e) => this.update(JSON.parse(e.data)));
    source.addEventListener("log", (e) => renderLog(JSON.parse(e.data)));
    source.addEventListener("end", () => {
      source.close();
      this.source = null;
      // Only a run that trained has curves to call complete.
      const r = this.current;
      this.live.textContent = r.attempts > 0 ? `${r.status}: curves complete` : `${r.status} before it started`;
      this.refresh();
    });
    // The server ends each stream after a while and EventSource reconnects by itself (sending
    // Last-Event-ID): only say so when it stays disconnected.
    source.onopen = () => { this.live.textContent = "live"; };
    source.onerror = () => {
      setTimeout(() => {
        if (this.source === source && source.readyState !== 1) this.live.textContent = "reconnecting…";
      }, 3000);
    };
  }

  // Once the run has ended: its summary (benchmarks), export choices and Evaluate from the API.
  async refresh() {
    const res = await api("GET", this.data.links.api);
    if (res.ok) renderAfter(res.data, this.finals);
  }

  // The ETA counts down between status events.
  tick() {
    const r = this.current;
    if (r.status !== "running" || this.eta.value === null || this.eta.value === undefined) return;
    renderProgress($("#run-progress"), r, this.eta.value - (Date.now() - this.eta.at) / 1000);
    renderStage(r);
  }
}

function renderActions(r) {
  $("#cancel-run").hidden = !r.can_cancel;
  $("#resume-run").hidden = !r.can_resume;
  $(".ckpt-name").textContent = r.checkpoint || "";
  $("#restart-run").hidden = !r.can_restart;
  $("#restart-note").hidden = !r.can_restart;
  $("#delete-run").hidden = !r.can_delete;
  const inspect = $("#inspect-link");
  inspect.hidden = !r.links.inspect;
  if (r.links.inspect) inspect.href = r.links.inspect;
}

function renderFacts(r) {
  $("#best-loss").textContent = fmtLoss(r.best_eval_loss);
  $("#final-loss").textContent = fmtLoss(r.final_eval_loss);
  $("#checkpoint-step").textContent = r.checkpoint_step === null ? "none yet" : `step ${r.checkpoint_step}`;
  $("#elapsed").textContent = fmtDuration(r.elapsed_s) || "—";
  $("#attempts").textContent = String(r.attempts);
  $("#disk").textContent = fmtSize(r.disk_bytes);
  $("#earlier-label").hidden = r.attempts < 2;
  if (r.attempts > 0) $("#log-card").hidden = false;
  const err = $("#run-error");
  err.hidden = !r.error;
  err.textContent = r.error || "";
}

// The log's tail follows the end unless the reader scrolled up; the process output opens on news.
function renderLog(d) {
  const pre = $("#log-tail");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.hidden = !d.log.length;
  pre.textContent = d.log.join("\n");
  if (atBottom) pre.scrollTop = pre.scrollHeight;
  if (d.output.length) {
    $("#output-tail").textContent = d.output.join("\n");
    $("#output-details").open = true;
  }
}

function showError(detail) {
  $("#run-error").hidden = false;
  $("#run-error").textContent = typeof detail === "string" ? detail : JSON.stringify(detail);
}

async function act(page, action) {
  const id = page.data.id;
  if (CONFIRM[action] && !window.confirm(CONFIRM[action])) return;
  if (action === "delete") {
    const res = await api("DELETE", `/api/runs/${id}`);
    if (res.ok) location.href = "/runs";
    else showError(res.data.detail);
    return;
  }
  const res = await api("POST", `/api/runs/${id}/${action}`);
  if (!res.ok) { showError(res.data.detail); return; }
  page.update(res.data);
  if (action === "resume" || action === "restart") page.connect(false);
}

// Name, tags and notes: PATCH the run, then show the new name.
async function saveMeta(e, id) {
  e.preventDefault();
  const tags = $("#meta-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  const body = { name: $("#meta-name").value.trim(), notes: $("#meta-notes").value, tags };
  const res = await api("PATCH", `/api/runs/${id}`, body);
  const state = $("#meta-state");
  if (!res.ok) {
    const d = res.data.detail;
    state.textContent = Array.isArray(d) ? d.map((x) => `${(x.loc || []).slice(-2).join(".")}: ${x.msg}`).join("; ") : String(d);
    return;
  }
  state.textContent = "saved";
  $("#run-name").textContent = res.data.name;
  document.title = `Run ${res.data.name || id} · EntroDrop Studio`;
}

function initRun(data) {
  const page = new RunPage(data);
  showBadge($("#run-status"), data, data.facts);
  chartControls(page.redraw, data.id);
  for (const action of ["cancel", "resume", "restart", "delete"]) {
    $(`#${action}-run`).addEventListener("click", () => act(page, action));
  }
  $("#meta-form").addEventListener("submit", (e) => saveMeta(e, data.id));
  renderStopped($("#stopped-early"), data);
  renderAfter(data, page.finals);
  initExport();
  initEvaluate(data, (run) => { page.update(run); page.connect(false); });
  setInterval(() => page.tick(), 1000);
  const pre = $("#log-tail");
  pre.scrollTop = pre.scrollHeight;
  page.connect(false);
}

initRun(pageData("run-data"));
