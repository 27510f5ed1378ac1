// The run page: live curves over server-sent events, status, cancel and resume.

import { chartControls, drawPanels, Series } from "./runs_charts.js";
import { $, api, fmtDuration, fmtLoss, pageData, renderBadge, renderProgress, throttled } from "./runs_common.js";

// The stage the training process names (loading model, scoring reference entropies k/n,
// training step k/n, evaluating) replaces the bare step count while the run is running.
function renderStage(r) {
  if (r.status === "running" && r.stage) $("#run-progress .steps").textContent = r.stage;
}

function initRun(data) {
  const series = new Series();
  const redraw = throttled(() => drawPanels(data.panels, [{ id: data.id, label: data.id, series }], false, data.facts.metric_labels));
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
    renderStage(r);
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
    renderStage(current);
  }, 1000);
  const pre = $("#log-tail");
  pre.scrollTop = pre.scrollHeight;
  connect(false);
}

initRun(pageData("run-data"));
