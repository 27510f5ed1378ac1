// The run page's Evaluate action: lm-eval tasks on a finished run's model, queued through the
// one queue (POST /api/runs/{id}/evaluate); its progress is a stage of the run.

import { api } from "../common/api.js";
import { $, $$ } from "../common/dom.js";

// A checkbox per task the server offers: the offline ones ticked, the paper's (network) not.
function taskChoices(facts) {
  const box = $("#evaluate-tasks");
  box.textContent = "";
  const b = facts.benchmarks;
  const offered = [
    ...b.offline_tasks.map((t) => [t, true, "offline"]),
    ...b.paper_suite.filter((t) => !b.code_tasks.includes(t)).map((t) => [t, false, "needs network"]),
  ];
  for (const [task, on, note] of offered) {
    const label = document.createElement("label");
    label.className = "choice";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = task;
    input.checked = on;
    const small = document.createElement("small");
    small.className = "muted";
    small.textContent = ` (${note})`;
    label.append(input, ` ${task}`, small);
    box.append(label);
  }
}

function request() {
  const picked = $$("#evaluate-tasks input:checked").map((i) => i.value);
  const other = $("#evaluate-other").value.split(",").map((t) => t.trim()).filter(Boolean);
  const limit = $("#evaluate-limit").value;
  return { tasks: [...picked, ...other], limit: limit ? Number(limit) : null };
}

function errorText(d) {
  if (Array.isArray(d.errors) && d.errors.length) return d.errors.map((e) => e.msg).join("; ");
  return typeof d.detail === "string" ? d.detail : JSON.stringify(d.detail);
}

// onQueued(run) follows the run again: its stage shows the evaluation's progress.
export function initEvaluate(data, onQueued) {
  taskChoices(data.facts);
  const state = $("#evaluate-state");
  $("#evaluate-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = $("#evaluate-run");
    button.disabled = true;
    state.textContent = "queuing…";
    const res = await api("POST", `/api/runs/${data.id}/evaluate`, request());
    button.disabled = false;
    if (!res.ok) { state.textContent = errorText(res.data); return; }
    state.textContent = `queued: the run's progress shows the evaluation (${res.data.status})`;
    onQueued(res.data);
  });
}

// Offered only on a finished run that kept a model.
export function renderEvaluate(r) {
  const offered = r.status === "succeeded" && r.has_model;
  $("#evaluate-form").hidden = !offered;
  if (offered) $("#bench-card").hidden = false; // a run that just ended: its card appears
}
