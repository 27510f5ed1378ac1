/* The Inspect page: score a text (POST /api/score or /api/compare), render its tokens once, then
   let the policy controls re-mark them in the page (policy.js, no model call). This module wires
   the controls; scoring.js scores, render.js draws, share.js keeps the view in the URL. */
import { onModelStatus } from "../common/model_status.js";
import { drawSchedule } from "./charts.js";
import { installColourClasses } from "./colours.js";
import { initControls, readPolicy } from "./controls.js";
import { linkRequest } from "./link.js";
import { initConversation } from "./conversation.js";
import { exportCsv, exportJson } from "./export.js";
import { gen, initGenerate } from "./generate.js";
import { applyPolicy, renderResult, setColour, shownPanes } from "./render.js";
import { attachDraws, detailOf, fetchJSON } from "./requests.js";
import { cancelScore, estimate, score } from "./scoring.js";
import { copyLink } from "./share.js";
import { $, DATA, setStatus, state } from "./state.js";
import { initTokenEvents } from "./tooltip.js";
import { decodeState } from "./url.js";

// Read by the tests and the benchmark (bench/bench_inspect_page.py).
window.EntroInspect = { state, gen, applyPolicy: () => applyPolicy(), currentPolicy: () => readPolicy() };

// A file's text into the text box, read by the server (POST /api/text-file): an empty, binary or
// non-UTF-8 file is refused in the server's own words, the same a dataset upload gets.
async function loadFile(file) {
  const limit = DATA.limits.max_upload_bytes;
  if (file.size > limit) {
    setStatus(`${file.name} is ${file.size} bytes; the limit is ${limit} bytes.`, "error");
    return;
  }
  const fd = new FormData();
  fd.append("file", file);
  setStatus(`Reading ${file.name}…`, "busy");
  const res = await fetchJSON("/api/text-file", { method: "POST", body: fd }).catch(() => null);
  if (!res) { setStatus(`Could not read ${file.name}: the server did not answer.`, "error"); return; }
  if (!res.ok) { setStatus(`${detailOf(res)}; nothing was loaded.`, "error"); return; }
  $("text").value = res.body.text;
  $("sample").value = "";
  setStatus(`Loaded ${res.body.name} (${res.body.n_chars.toLocaleString()} characters); press Score.`, "ok");
  estimate();
}

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
    if (file) loadFile(file);
  });
  // The reader asked for it: what a link asked for is done (or replaced), so its note goes.
  const scoreAsked = () => { $("link-note").hidden = true; score(); };
  $("text").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) scoreAsked();
  });
  $("score-btn").addEventListener("click", scoreAsked);
  $("cancel-btn").addEventListener("click", cancelScore);
  let estimateTimer = null;
  $("text").addEventListener("input", () => {
    clearTimeout(estimateTimer);
    estimateTimer = setTimeout(estimate, 300);
  });
}

// Text, Conversation or Generate: the page's CSS shows each mode's panels (data-mode).
function initModes() {
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => {
      document.querySelector(".inspect").dataset.mode = radio.value;
      setStatus("", "");
    });
  }
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

// A new seed needs its draws from the server before the marks can follow; a bad one is said.
function watchSeed() {
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
  watchSeed();
}

// The docked policy panel of a phone opens and closes; its chart takes its width once shown.
function initPolicyToggle() {
  const toggle = $("policy-toggle");
  toggle.addEventListener("click", () => {
    const open = !$("policy").classList.contains("open");
    $("policy").classList.toggle("open", open);
    document.querySelector(".inspect").classList.toggle("policy-open", open);
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "Hide" : "Show";
    if (open && window.Plotly && $("schedule-chart").data) Plotly.Plots.resize("schedule-chart");
  });
}

function initView() {
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

// Opening a link: controls from the URL; its text is scored at once only where link.js allows.
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
  const link = linkRequest(v);
  $("link-note").textContent = link.note;
  $("link-note").hidden = !link.note;
  if (v.text !== null) {
    $("text").value = v.text;
    if (link.scoreNow) score();
    else estimate();
  }
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
initModes();
initConversation(score);
initGenerate();
initModelPickers();
initPolicy();
initPolicyToggle();
initView();
initTokenEvents($("panes"), $("tip"), () => ({ result: state.result, shown: state.result ? shownPanes() : [] }));
drawSchedule(readPolicy());
applyUrl();
watchModel();
