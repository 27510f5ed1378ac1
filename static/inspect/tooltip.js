/* A token's numbers in a tooltip, on hover or keyboard focus; arrows, Home and End move between
   the tokens of a pane. User text reaches the DOM through textContent only. */
import { el, fmt, visible } from "./view.js";

// What the token is to training: generated, not trained (a conversation's prompt), or its mark.
function tokenStatus(pane, tok, i, mark) {
  if (pane.generated) return `generated; drawn from ${fmt(tok.sampled_entropy)} nats after temperature and top-p`;
  if (tok.entropy === null) return "first token: no prediction, never dropped";
  if (tok.trained === false && pane.entropies[i] === null) {
    return `${tok.role} ${tok.segment === "template" ? "template" : "prompt"} token: not trained, never dropped`;
  }
  return mark === 2 ? "dropped by the policy" : mark === 1 ? "candidate (entropy ≤ τ), kept this time"
    : "kept (entropy above τ)";
}

function showTip(tip, hit, result) {
  const tok = hit.pane.score.tokens[hit.i];
  tip.replaceChildren();
  tip.appendChild(el("div", "tip-token", visible(tok.text)));
  const mark = hit.pane.marks ? hit.pane.marks[hit.i] : 0;
  tip.appendChild(el("div", `tip-status m${mark}`, tokenStatus(hit.pane, tok, hit.i, mark)));
  const dl = el("dl");
  const add = (k, v) => {
    dl.appendChild(el("dt", "", k));
    dl.appendChild(el("dd", "", v));
  };
  add("position", String(tok.index));
  add("id", String(tok.id));
  add("entropy", tok.entropy === null ? "–" : `${fmt(tok.entropy)} nats`);
  add("surprisal", tok.surprisal === null ? "–" : `${fmt(tok.surprisal)} nats`);
  add("probability", fmt(tok.prob, 4));
  add("rank", tok.rank === null ? "–" : String(tok.rank));
  if (tok.role) add("role", `${tok.role} (${tok.segment})${tok.trained ? ", trained" : ""}`);
  if (result.delta) {
    const other = result.panes[1].score.tokens[hit.i];
    add("entropy B", other.entropy === null ? "–" : `${fmt(other.entropy)} nats`);
    add("Δ B − A", fmt(result.delta[hit.i]));
  }
  tip.appendChild(dl);
  if (tok.top.length) {
    tip.appendChild(el("div", "tip-sub", `top ${tok.top.length} predictions`));
    const list = el("ol", "tip-top");
    for (const alt of tok.top) {
      const li = el("li", alt.id === tok.id ? "hit" : "");
      // The row's background is a bar as long as the probability.
      const w = Math.round((alt.prob || 0) * 100);
      li.style.background = `linear-gradient(to right, rgba(110,168,254,.28) ${w}%, transparent ${w}%)`;
      li.appendChild(el("code", "", visible(alt.text)));
      li.appendChild(el("span", "p", fmt(alt.prob, 3)));
      list.appendChild(li);
    }
    tip.appendChild(list);
  }
  tip.hidden = false;
  const r = hit.span.getBoundingClientRect();
  const left = Math.min(r.left, window.innerWidth - tip.offsetWidth - 8);
  let top = r.bottom + 6;
  if (top + tip.offsetHeight > window.innerHeight - 8) top = Math.max(8, r.top - tip.offsetHeight - 6);
  tip.style.left = `${Math.max(8, left)}px`;
  tip.style.top = `${top}px`;
}

/** Hover and keyboard focus show a token's numbers; arrows, Home and End move within a pane.
    `context()` returns {result, shown}: the current result and the panes on screen. */
export function initTokenEvents(panes, tip, context) {
  const hide = () => { tip.hidden = true; };
  const tokenAt = (target) => {
    const span = target.closest && target.closest(".tok[data-i]");
    const ctx = context();
    if (!span || !ctx.result) return null;
    const pane = ctx.shown[Number(span.closest(".pane").dataset.pane)];
    return { span: span, pane: pane, i: Number(span.dataset.i), result: ctx.result };
  };
  panes.addEventListener("mouseover", (ev) => {
    const hit = tokenAt(ev.target);
    if (hit) showTip(tip, hit, hit.result);
  });
  panes.addEventListener("mouseleave", hide);
  panes.addEventListener("focusin", (ev) => {
    const hit = tokenAt(ev.target);
    if (!hit) return;
    for (const s of hit.span.parentNode.querySelectorAll('.tok[tabindex="0"]')) s.tabIndex = -1;
    hit.span.tabIndex = 0;
    showTip(tip, hit, hit.result);
  });
  panes.addEventListener("focusout", (ev) => {
    const next = ev.relatedTarget;
    if (!next || !next.closest || !next.closest(".tok")) hide();
  });
  panes.addEventListener("keydown", (ev) => {
    const hit = tokenAt(ev.target);
    if (!hit) return;
    const last = hit.pane.spans.length - 1;
    const moves = { ArrowRight: hit.i + 1, ArrowDown: hit.i + 1, ArrowLeft: hit.i - 1, ArrowUp: hit.i - 1,
      Home: 0, End: last };
    if (ev.key === "Escape") hide();
    if (!(ev.key in moves)) return;
    ev.preventDefault();
    hit.pane.spans[Math.min(last, Math.max(0, moves[ev.key]))].focus();
  });
  document.addEventListener("scroll", hide, true);
}
