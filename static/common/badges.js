// The one way a status badge is drawn, on every page: the word from the page's facts
// (`status_words`, app/runs/facts.py or app/studies/views.py), its colours from the
// `.badge.status-<status>` rules of style.css.

/** A badge for `status`; `stopping`: a running run asked to stop (the facts' `stopping_word`). */
export function statusBadge(status, facts, stopping = false) {
  const span = document.createElement("span");
  span.className = `badge status-${status}`;
  span.dataset.status = status;
  const word = (facts.status_words || {})[status] || status;
  span.textContent = stopping && status === "running" ? `${word} (${facts.stopping_word})` : word;
  return span;
}

/** Put the badge of run or study `r` ({status, cancel_requested?}) into `slot`, replacing any. */
export function showBadge(slot, r, facts) {
  slot.replaceChildren(statusBadge(r.status, facts, Boolean(r.cancel_requested)));
}
