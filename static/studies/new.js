// The new-study form: base settings (New run's fields), a variants checklist with presets, seeds;
// shows how many runs it will queue and posts the study to /api/studies.

import { api } from "../common/api.js";
import { $, $$, pageData } from "../common/dom.js";
import { fieldValue, setPath } from "../common/form.js";
import { initPickers, pickedDataset, pickedModel, pickerErrors, uploadPending } from "../common/pickers.js";
import { evalTasks } from "../runs/eval_tasks.js";
import { initStudyEstimate } from "./estimate.js";

function parseSeeds(text) {
  return text.split(/[\s,]+/).filter(Boolean).map(Number);
}

function collect(data) {
  const base = { model: pickedModel(), dataset: pickedDataset() };
  for (const el of $$("[data-field]", $(".study-main"))) {
    const name = el.dataset.field;
    if (["name", "model", "dataset"].includes(name)) continue;
    const value = fieldValue(el);
    if (value !== undefined) setPath(base, name, value);
  }
  base.eval_tasks = evalTasks($(".study-main"));
  const variants = $$(".variant:checked").map((el) => data.variants[Number(el.value)].spec);
  return {
    name: $("#f-name").value.trim(),
    base,
    variants,
    seeds: parseSeeds($("#f-seeds").value),
    keep_checkpoints: $("#f-keep").checked,
  };
}

function showCount(data) {
  const n = $$(".variant:checked").length * parseSeeds($("#f-seeds").value).length;
  const el = $("#run-count");
  el.textContent = `${n} runs will be queued` + (n > data.max_runs ? ` (this server allows ${data.max_runs})` : "");
  el.classList.toggle("over", n > data.max_runs);
  $("#launch").disabled = n === 0 || n > data.max_runs;
}

function usePreset(data, index) {
  const labels = new Set(data.presets[index].labels);
  for (const el of $$(".variant")) el.checked = labels.has(data.variants[Number(el.value)].label);
  showCount(data);
}

// Server errors beside their field: base.<field> at the field, the rest in the status line.
function showErrors(res) {
  for (const el of $$("[data-error-for]")) el.textContent = "";
  const rest = [];
  for (const e of res.data.errors || []) {
    const loc = (e.loc || []).filter((p) => p !== "body");
    const name = loc[0] === "base" ? loc.slice(1).join(".") : String(loc[0] || "");
    const slot = document.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) slot.textContent = e.msg;
    else rest.push(`${loc.join(".")}: ${e.msg}`);
  }
  $("#form-status").textContent = rest.length ? rest.join("; ") : res.data.detail;
}

function init(data) {
  $$("[data-preset]").forEach((b) => b.addEventListener("click", () => {
    usePreset(data, Number(b.dataset.preset));
    $("#study-form").dispatchEvent(new Event("change")); // the estimate follows
  }));
  $("#study-form").addEventListener("input", () => showCount(data));
  usePreset(data, 0);
  // The pickers' own problems (a refused upload in the server's words, a missing path) at once.
  const pickersChanged = () => showErrors({ data: { errors: pickerErrors(), detail: "" } });
  initPickers(() => { pickersChanged(); $("#study-form").dispatchEvent(new Event("change")); });
  const ready = () => !uploadPending() && !pickerErrors().length && $$(".variant:checked").length > 0;
  initStudyEstimate(data.estimate_url, () => collect(data), ready);
  $("#study-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (uploadPending()) { $("#form-status").textContent = "waiting for the upload…"; return; }
    const local = pickerErrors();
    if (local.length) { showErrors({ data: { errors: local, detail: "" } }); return; }
    $("#launch").disabled = true;
    $("#form-status").textContent = "Queuing…";
    const res = await api("POST", "/api/studies", collect(data));
    if (res.ok) { window.location.href = res.data.url; return; }
    showErrors(res);
    showCount(data);
  });
}

init(pageData("study-form-data"));
