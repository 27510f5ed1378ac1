// New study's cost: the whole study's time and disk here, from POST /api/studies/check, asked
// again a moment after the form changes (the latest answer wins).

import { api } from "../common/api.js";
import { $ } from "../common/dom.js";

let seq = 0;

async function ask(url, body) {
  const mine = ++seq;
  const el = $("#study-estimate");
  el.dataset.state = "busy";
  const res = await api("POST", url, body);
  if (mine !== seq) return; // a newer ask is on its way
  el.dataset.state = res.ok ? "done" : "error";
  if (!res.ok) {
    el.textContent = "The estimate follows once the settings are valid.";
    el.classList.remove("warn");
    return;
  }
  const est = res.data.estimate;
  el.textContent = res.data.estimate_text;
  el.classList.toggle("warn", Boolean(est.warn || (est.disk && (est.disk.warn || !est.disk.fits))));
}

/** Estimate now and after each change; body() is the study the form describes. */
export function initStudyEstimate(url, body, ready) {
  let timer = null;
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(() => { if (ready()) ask(url, body()); }, 300);
  };
  $("#study-form").addEventListener("input", later);
  $("#study-form").addEventListener("change", later);
  later();
}
