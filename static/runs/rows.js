// A run's live pieces, redrawn from the API: its status badge, progress bar and losses
// (the progress markup comes from templates/runs/_macros.html).

import { showBadge } from "../common/badges.js";
import { fmtDuration, fmtLoss, fmtTime } from "../common/format.js";

export function renderProgress(el, r, eta) {
  const pct = Math.round(r.progress * 1000) / 10;
  const bar = el.querySelector(".bar");
  bar.style.width = `${pct}%`;
  bar.className = `bar status-${r.status}`;
  el.querySelector(".progress").setAttribute("aria-valuenow", String(Math.round(pct)));
  el.querySelector(".steps").textContent = `${r.step}${r.total_steps ? " / " + r.total_steps : ""} steps`;
  el.querySelector(".eta").textContent = etaText(r, eta === undefined ? r.eta_s : eta);
}

// "starting" while the run loads (no ETA yet, never "0 s"); "at most" when early stopping may
// end it sooner.
function etaText(r, left) {
  if (r.status === "running" && r.starting) return "· starting";
  if (left !== null && left !== undefined) return `· ETA ${r.eta_at_most ? "at most " : ""}${fmtDuration(left)}`;
  return r.status === "running" ? "· starting" : "";
}

// One row of a runs table: badge, progress and (where the row has them) best and final loss.
export function renderRow(tr, r, facts) {
  showBadge(tr.querySelector(".status-cell"), r, facts);
  renderProgress(tr.querySelector(".progress-cell"), r);
  const best = tr.querySelector(".best");
  if (best) best.textContent = fmtLoss(r.best_eval_loss);
  const bestStep = tr.querySelector(".best-step");
  if (bestStep) bestStep.innerHTML = r.best_step === null ? "" : `<br>step ${r.best_step}${r.stopped_early ? " · stopped early" : ""}`;
  const fin = tr.querySelector(".final");
  if (fin) fin.textContent = fmtLoss(r.final_eval_loss);
  const started = tr.querySelector(".started");
  if (started) renderStarted(started, r, facts);
}

// When the run started (its first launch), not when it was queued; a queued run says so.
export function renderStarted(el, r, facts) {
  el.dataset.time = r.started_at ? String(r.started_at) : "";
  el.textContent = r.started_at ? fmtTime(r.started_at) : r.status === "queued" ? facts.status_words.queued : facts.not_started;
}
