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
  const left = eta === undefined ? r.eta_s : eta;
  el.querySelector(".eta").textContent =
    left !== null && left !== undefined ? `· ETA ${fmtDuration(left)}` : r.status === "running" ? "· starting" : "";
}

// One row of a runs table: badge, progress and (where the row has them) best and final loss.
export function renderRow(tr, r, facts) {
  showBadge(tr.querySelector(".status-cell"), r, facts);
  renderProgress(tr.querySelector(".progress-cell"), r);
  const best = tr.querySelector(".best");
  if (best) best.textContent = fmtLoss(r.best_eval_loss);
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
