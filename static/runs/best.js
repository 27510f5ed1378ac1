// The run's best evaluation beside its final values, and why early stopping ended the run.

import { $, cell } from "../common/dom.js";
import { fmtLoss } from "../common/format.js";

const labelOf = (name, facts) => facts.metric_labels[name] || (facts.metrics[name] || {}).label || name;

export function renderStopped(el, r) {
  el.hidden = !r.stopped_early;
  if (!r.stopped_early) return;
  // The server's reason already names the step (entrodrop.training.best.stop_reason).
  const reason = r.stop_reason || `early stopping at step ${r.step}`;
  el.textContent = reason.charAt(0).toUpperCase() + reason.slice(1);
}

function bestNote(r, facts) {
  const judge = labelOf(r.best_metric, facts);
  const kept = r.best_checkpoint
    ? `its checkpoint (${r.best_checkpoint}) is kept beside the last one: Inspect and the export can use it.`
    : "its checkpoint was not kept (no checkpoints saved).";
  return `Best by ${judge}, at step ${r.best_step}; ${kept}`;
}

// One row per metric of the best evaluation: its value there and its latest value (finals).
export function renderBest(r, finals, facts) {
  const card = $("#best-card");
  card.hidden = r.best_step === null || r.best_step === undefined;
  if (card.hidden) return;
  $("#best-note").textContent = bestNote(r, facts);
  const table = $("#best-table");
  const done = !facts.active.includes(r.status);
  table.tHead.innerHTML = "";
  const head = table.tHead.insertRow();
  for (const text of ["Metric", `Best (step ${r.best_step})`, done ? `Final (step ${r.step})` : `Latest (step ${r.step})`]) {
    const th = document.createElement("th");
    th.textContent = text;
    if (text !== "Metric") th.className = "num";
    head.append(th);
  }
  const body = table.tBodies[0];
  body.textContent = "";
  for (const [name, value] of Object.entries(r.best_metrics || {})) {
    const tr = body.insertRow();
    tr.dataset.metric = name;
    if (name === r.best_metric) tr.className = "judge";
    cell(tr, labelOf(name, facts)).title = name;
    cell(tr, fmtLoss(value), "num best-value");
    cell(tr, fmtLoss(finals[name]), "num final-value");
  }
  const link = $("#inspect-best");
  link.hidden = !r.links.inspect_best;
  if (r.links.inspect_best) link.href = r.links.inspect_best;
}
