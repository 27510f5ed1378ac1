// The run page: live curves over server-sent events, status, cancel, resume or restart, rename, delete.

import { chartControls, drawPanels, Series } from "./runs_charts.js";
import { $, api, fmtDuration, fmtLoss, fmtSize, pageData, renderBadge, renderProgress, throttled } from "./runs_common.js";

// Words for what each action does, asked before the ones that stop or remove something.
const CONFIRM = {
  cancel: "Stop this run? It saves no new checkpoint; a later resume continues from the last complete one.",
  delete: "Delete this run, its metrics and its folder (checkpoints and model included)? This cannot be undone.",
};

// The stage the training process names (loading model, scoring reference entropies k/n,
// training step k/n, evaluating) replaces the bare step count while the run is running.
function renderStage(r) {
  if (r.status === "running" && r.stage) $("#run-progress .steps").textContent = r.stage;
}

function initRun(data) {
  const series = new Series();
  let current = data;
  const run = () => ({ id: data.id, label: data.id, series, attempt: Math.max(1, current.attempts), tokensPerStep: data.tokens_per_step });
  const redraw = throttled(() => drawPanels(data.panels, [run()], false, data.facts.metric_labels, data.facts.x_axes));
  chartControls(redraw, data.id);
  let source = null;
  let eta = { value: data.eta_s, at: Date.now() };
  const live = $("#live-state");

  function update(r) {
    const attemptChanged = r.attempts !== current.attempts;
    current = r;
    eta = { value: r.eta_s, at: Date.now() };
    renderBadge($("#run-status"), r);
    renderProgress($("#run-progress"), r);
    renderStage(r);
    $("#cancel-run").hidden = !r.can_cancel;
    $("#resume-run").hidden = !r.can_resume;
    $(".ckpt-name").textContent = r.checkpoint || "";
    $("#restart-run").hidden = !r.can_restart;
    $("#restart-note").hidden = !r.can_restart;
    $("#delete-run").hidden = !r.can_delete;
    $("#best-loss").textContent = fmtLoss(r.best_eval_loss);
    $("#final-loss").textContent = fmtLoss(r.final_eval_loss);
    $("#checkpoint-step").textContent = r.checkpoint_step === null ? "none yet" : `step ${r.checkpoint_step}`;
    $("#elapsed").textContent = fmtDuration(r.elapsed_s) || "—";
    $("#attempts").textContent = String(r.attempts);
    $("#disk").textContent = fmtSize(r.disk_bytes);
    $("#earlier-label").hidden = r.attempts < 2;
    if (r.attempts > 0) $("#log-card").hidden = false;
    const inspect = $("#inspect-link");
    inspect.hidden = !r.links.inspect;
    if (r.links.inspect) inspect.href = r.links.inspect;
    const err = $("#run-error");
    err.hidden = !r.error;
    err.textContent = r.error || "";
    if (attemptChanged) redraw(); // a new attempt: its curves replace the old ones
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
      pre.hidden = !d.log.length;
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
      // Only a run that trained has curves to call complete.
      live.textContent = current.attempts > 0 ? `${current.status}: curves complete` : `${current.status} before it started`;
    });
    // The server ends each stream after a while and EventSource reconnects by itself (sending
    // Last-Event-ID): only say so when it stays disconnected.
    source.onopen = () => { live.textContent = "live"; };
    source.onerror = () => {
      const s = source;
      setTimeout(() => { if (s && source === s && s.readyState !== 1) live.textContent = "reconnecting…"; }, 3000);
    };
  }

  function showError(detail) {
    $("#run-error").hidden = false;
    $("#run-error").textContent = typeof detail === "string" ? detail : JSON.stringify(detail);
  }

  async function act(action) {
    if (CONFIRM[action] && !window.confirm(CONFIRM[action])) return;
    if (action === "delete") {
      const res = await api("DELETE", `/api/runs/${data.id}`);
      if (res.ok) location.href = "/runs";
      else showError(res.data.detail);
      return;
    }
    const res = await api("POST", `/api/runs/${data.id}/${action}`);
    if (!res.ok) { showError(res.data.detail); return; }
    update(res.data);
    if (action === "resume" || action === "restart") connect(false);
  }
  for (const action of ["cancel", "resume", "restart", "delete"]) {
    $(`#${action}-run`).addEventListener("click", () => act(action));
  }

  $("#meta-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const tags = $("#meta-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    const body = { name: $("#meta-name").value.trim(), notes: $("#meta-notes").value, tags };
    const res = await api("PATCH", `/api/runs/${data.id}`, body);
    const state = $("#meta-state");
    if (!res.ok) {
      const d = res.data.detail;
      state.textContent = Array.isArray(d) ? d.map((x) => `${(x.loc || []).slice(-2).join(".")}: ${x.msg}`).join("; ") : String(d);
      return;
    }
    state.textContent = "saved";
    $("#run-name").textContent = res.data.name;
    document.title = `Run ${res.data.name || data.id} · EntroDrop Studio`;
  });

  setInterval(() => {
    if (current.status !== "running" || eta.value === null || eta.value === undefined) return;
    renderProgress($("#run-progress"), current, eta.value - (Date.now() - eta.at) / 1000);
    renderStage(current);
  }, 1000);
  const pre = $("#log-tail");
  pre.scrollTop = pre.scrollHeight;
  connect(false);
}

initRun(pageData("run-data"));
