// New run's data report: what the chosen dataset gives the model (POST /api/runs/data): its
// format, examples, tokens after the chat template, the share that carries loss, truncations.

import { api } from "../common/api.js";
import { $ } from "../common/dom.js";

// The settings the report depends on: it is asked again only when one of them changes.
const KEYS = ["model", "dataset", "data_format", "seq_len", "train_on", "truncation", "max_train_tokens"];
let asked = null;

const n = (x) => Number(x).toLocaleString();

export function reportText(d) {
  const share = d.tokens ? ` (${((100 * d.trained_tokens) / d.tokens).toFixed(1)}%)` : "";
  const parts = [
    `format ${d.format}`,
    `${n(d.examples)} examples`,
    `${n(d.tokens)} tokens`,
    `${n(d.trained_tokens)} trained${share}, train on ${d.train_on}`,
    `${n(d.truncated)} truncated at ${n(d.seq_len)} tokens`,
  ];
  if (d.dropped) parts.push(`${n(d.dropped)} left out`);
  return parts.join(" · ");
}

/** Ask for the dataset's report when what it depends on changed since the last ask. */
export async function showDataReport(body) {
  const key = JSON.stringify(KEYS.map((k) => body[k]));
  if (key === asked || !body.dataset) return;
  asked = key;
  const el = $("#data-report");
  el.classList.remove("warn");
  el.dataset.state = "busy";
  el.textContent = "reading the data…";
  const res = await api("POST", "/api/runs/data", body);
  if (asked !== key) return; // a newer ask is on its way
  el.dataset.state = res.ok ? "done" : "error";
  if (res.ok) {
    el.textContent = reportText(res.data);
    el.classList.toggle("warn", res.data.truncated > 0 || res.data.trained_tokens === 0);
  } else {
    const d = res.data;
    el.textContent = (d.errors || []).map((e) => e.msg).join("; ") || String(d.detail);
    el.classList.add("warn");
  }
}
