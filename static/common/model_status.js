// The one health poller: GET /api/health until the server's model has loaded (or failed).
// The header badge on every page shows it; pages subscribe with onModelStatus (one poll for all).

import { pageFetch } from "./csrf.js";

const listeners = new Set();
let last = null;

function notify(health) {
  last = health;
  for (const fn of listeners) fn(health);
}

/** Call `fn(health)` now (if known) and on every poll; health is null while unreachable. */
export function onModelStatus(fn) {
  listeners.add(fn);
  if (last) fn(last);
  return () => listeners.delete(fn);
}

function showHealth(health) {
  const badge = document.getElementById("model-status");
  if (!badge) return;
  const show = (state, text) => { badge.dataset.state = state; badge.textContent = text; };
  if (!health) show("unknown", "server unreachable");
  else if (health.model_loaded) show("ready", `model: ${health.model}`);
  else if (health.state === "error") {
    show("error", "model failed to load");
    badge.title = health.error || "";
  } else show("loading", `loading model ${health.spec}…`);
}

async function poll() {
  let health = null;
  try {
    const res = await pageFetch("/api/health");
    health = res.ok ? await res.json() : null;
  } catch (_) {
    health = null;
  }
  notify(health);
  // A loaded model stays loaded and a failed load stays failed: no need to keep polling.
  if (health && (health.model_loaded || health.state === "error")) return;
  setTimeout(poll, 1500);
}

onModelStatus(showHealth);
poll();
