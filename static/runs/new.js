// The new-run form: live validation against POST /api/runs/check, uploads, launch, preview.

import { api } from "../common/api.js";
import { $, $$, pageData } from "../common/dom.js";
import { fieldValue, setPath } from "../common/form.js";
import { initPickers, pickedDataset, pickedModel, pickerErrors, uploadPending } from "../common/pickers.js";
import { showDataReport } from "./data_report.js";
import { evalTasks } from "./eval_tasks.js";
import { renderPreview } from "./preview.js";

const form = $("#run-form");
let checkSeq = 0; // the latest check sent; older answers are ignored
let checksShown = 0; // checks whose answer the form shows (form[data-checks]: tests wait on it)

const radio = (name) => ($(`input[name="${name}"]:checked`) || {}).value;

// The config body the form describes: its fields, then the model, data and launcher choices.
function body(data) {
  const b = {};
  for (const el of $$("[data-field]", form)) {
    const value = fieldValue(el);
    if (value !== undefined) setPath(b, el.dataset.field, value);
  }
  if (b.adapter && b.adapter.kind === data.no_adapter) delete b.adapter; // full weights
  b.eval_tasks = evalTasks(form);
  b.model = pickedModel();
  b.dataset = pickedDataset();
  if (radio("launcher_kind") === "accelerate") {
    b.launcher = { kind: "accelerate", num_processes: Number($("#launcher-n").value) };
  } else b.launcher = { kind: "single", num_processes: 1 };
  const cmp = $("#f-compare").value;
  if (cmp) b.compare_with = cmp;
  return b;
}

// Each error beside the field its `loc` names (or its nearest named parent), else under Launch.
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

// The chosen method's help and parameters; the launch button names the pair it launches.
function syncVisibility(data) {
  const method = $("#f-method").value;
  $("#method-help").textContent = (data.methods.find((m) => m.name === method) || {}).help || "";
  const dropping = data.facts.dropping_methods.includes(method);
  $("#entrodrop-params").hidden = !dropping;
  const baseline = !dropping && method !== "none";
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

// A valid config's commands, JSON and cost on this machine, as the server computed them.
function showCheck(c) {
  $("#cli-command").textContent = c.commands.join("\n");
  $("#config-json").textContent = c.config_json;
  const est = $("#estimate");
  est.textContent = c.estimate_text + (c.estimate.runs > 1 ? ` Two runs (with the baseline): twice that.` : "");
  const disk = c.total.disk || c.estimate.disk;
  est.classList.toggle("warn", c.estimate.warn || Boolean(disk && (disk.warn || !disk.fits)));
}

function checked() {
  form.dataset.checks = String(++checksShown);
}

// Validate the form with the server; true when the config is valid.
async function check(data) {
  syncVisibility(data);
  const seq = ++checkSeq; // an answer to an earlier check no longer counts
  if (uploadPending()) return false; // the upload's answer checks again
  const b = body(data);
  const local = pickerErrors();
  if (local.length) { showErrors(local); checked(); return false; }
  const res = await api("POST", "/api/runs/check", b);
  if (seq !== checkSeq) return res.ok; // a newer check is on its way
  if (res.ok) { showErrors([]); showCheck(res.data); showDataReport(b); }
  else showErrors(res.data.errors, res.data.detail);
  checked();
  return res.ok;
}

async function launch(e, data) {
  e.preventDefault();
  const b = body(data);
  const local = pickerErrors();
  if (local.length) { showErrors(local); return; }
  const button = $("#launch");
  button.disabled = true;
  $("#form-status").textContent = "launching…";
  const res = await api("POST", "/api/runs", b);
  if (res.ok) { location.href = res.data.url; return; }
  button.disabled = false;
  $("#form-status").textContent = "";
  showErrors(res.data.errors, res.data.detail);
}

// The first batch scored and dropped at s = 0, 0.5, 1; waits while the model loads (503).
async function preview(data) {
  const b = body(data);
  const local = pickerErrors();
  if (local.length) { showErrors(local); return; }
  const status = $("#preview-status");
  status.textContent = "scoring the first batch… (the first time loads the model)";
  $("#preview-button").disabled = true;
  let res = await api("POST", "/api/runs/preview", b);
  for (let tries = 0; res.status === 503 && tries < 60; tries++) {
    status.textContent = `${res.data.detail} (retrying)`;
    await new Promise((r) => setTimeout(r, 3000));
    res = await api("POST", "/api/runs/preview", b);
  }
  $("#preview-button").disabled = false;
  if (!res.ok) { status.textContent = ""; showErrors(res.data.errors, res.data.detail); return; }
  status.textContent = `${res.data.model} · τ = ${res.data.tau === null ? "—" : res.data.tau.toFixed(2)} nats`;
  renderPreview(res.data);
}

// Typing the process count picks the accelerate launcher.
function initLauncherFocus() {
  $("#launcher-n").addEventListener("focus", () => { $('input[name="launcher_kind"][value="accelerate"]').checked = true; });
}

function initNewRun(data) {
  let timer = null;
  const later = () => { clearTimeout(timer); timer = setTimeout(() => check(data), 250); };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  form.addEventListener("submit", (e) => launch(e, data));
  $("#preview-button").addEventListener("click", () => preview(data));
  $("#copy-config").addEventListener("click", (e) => {
    e.preventDefault();
    navigator.clipboard && navigator.clipboard.writeText($("#config-json").textContent);
  });
  initPickers(() => check(data));
  initLauncherFocus();
  syncVisibility(data);
  check(data);
}

initNewRun(pageData("form-data"));
