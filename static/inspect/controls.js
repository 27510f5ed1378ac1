/* The policy controls: read them as a policy config, start them at the server's defaults, and
   show their values; and which checkpoint a model picker names. */
import { dropRate } from "./policy.js";
import { $, DATA } from "./state.js";

function num(id) {
  return Number($(id).value);
}

// A seed is a whole number >= 0; anything else is said, never silently read as 0.
export function seedProblem() {
  const text = $("seed").value.trim();
  if (text === "") return "seed is empty: give a whole number ≥ 0";
  if (!/^\d+$/.test(text)) return `seed ${text} is not a whole number ≥ 0`;
  if (Number(text) > Number.MAX_SAFE_INTEGER) return `seed ${text} is too large`;
  return null;
}

export function readPolicy() {
  const selection = document.querySelector('input[name="selection"]:checked').value;
  return {
    config: {
      selection: selection,
      quantile: num("quantile"),
      threshold: selection === "threshold" ? num("threshold") : null,
      rate_max: num("rate-max"),
      schedule: $("schedule").value,
      steepness: num("steepness"),
      midpoint: num("midpoint"),
      drop_mode: $("drop-mode").value,
      seed: seedProblem() ? null : Number($("seed").value.trim()),
    },
    progress: num("progress"),
  };
}

export function initControls() {
  const d = DATA.policy_defaults;
  for (const [id, key] of [["quantile", "quantile"], ["rate-max", "rate_max"], ["schedule", "schedule"],
    ["steepness", "steepness"], ["midpoint", "midpoint"], ["drop-mode", "drop_mode"], ["seed", "seed"]]) {
    $(id).value = d[key];
  }
  if (d.threshold !== null) $("threshold").value = d.threshold;
  updateOutputs(readPolicy());
}

export function updateOutputs(p) {
  $("quantile-out").textContent = p.config.quantile.toFixed(2);
  $("threshold-out").textContent = num("threshold").toFixed(2);
  $("rate-max-out").textContent = p.config.rate_max.toFixed(2);
  $("steepness-out").textContent = p.config.steepness.toFixed(1);
  $("midpoint-out").textContent = p.config.midpoint.toFixed(2);
  $("progress-out").textContent = `${p.progress.toFixed(2)} → r(s) = ${dropRate(p.progress, p.config).toFixed(3)}`;
  $("quantile-row").hidden = p.config.selection !== "quantile";
  $("threshold-row").hidden = p.config.selection !== "threshold";
  document.querySelector(".sigmoid-only").hidden = p.config.schedule !== "sigmoid";
}

export function modelSpec(selectId, folderId) {
  const value = $(selectId).value;
  if (value === "__folder__") return $(folderId).value.trim() || null;
  return value || null;
}
