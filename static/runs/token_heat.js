/* A probe's tokens as one heatmap: the spans are built once per probe and recoloured in place by
   swapping class names (one CSS class per colour bin, Inspect's), so scrubbing 8,192 tokens
   re-creates no node. Hover or focus shows a tooltip; arrows, Home and End move between the
   tokens shown (roving tabindex, as on Inspect). Token text reaches the DOM as textContent only. */
import { installColourClasses, N_BINS } from "../inspect/colours.js";
import { el, visible } from "../inspect/view.js";

let coloursInstalled = false;

/** The colour bins' CSS classes (c0.. levels, d0.. differences), once per page. */
export function installColours() {
  if (coloursInstalled) return;
  installColourClasses();
  coloursInstalled = true;
}

/** A value's bin in [lo, hi] (0 .. N_BINS - 1), or null when it has none. */
export function bin(value, lo, hi) {
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  const t = (value - lo) / (hi - lo);
  return Math.min(N_BINS - 1, Math.max(0, Math.round(t * (N_BINS - 1))));
}

/** The class of a level (0 .. top) or of a signed value (−top .. top). */
export function colourClass(value, top, signed) {
  const b = signed ? bin(value, -top, top) : bin(value, 0, top);
  return b === null ? "none" : `${signed ? "d" : "c"}${b}`;
}

/** A scale's top: the 95th percentile of |values| over (a sample of) rows, rounded up to a
    tenth of a nat below 1, a half nat above, so that a few outliers do not wash out every other
    token's colour (the legend says "or more"). */
export function robustTop(rows, floor = 0.5, q = 0.95) {
  const all = [];
  const total = rows.reduce((n, r) => n + r.length, 0);
  const stride = Math.max(1, Math.floor(total / 200000));
  let k = 0;
  for (const row of rows) {
    for (let i = 0; i < row.length; i++, k++) {
      if (k % stride === 0 && Number.isFinite(row[i])) all.push(Math.abs(row[i]));
    }
  }
  if (!all.length) return floor;
  all.sort((a, b) => a - b);
  const top = all[Math.min(all.length - 1, Math.floor(q * all.length))];
  const unit = top < 1 ? 0.1 : 0.5; // small differences keep a scale of their own size
  return Math.max(floor, Math.ceil(top / unit) * unit);
}

/** A JSON row (numbers and nulls) as a Float32Array, NaN for null. */
export function floats(row) {
  const out = new Float32Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] === null ? NaN : row[i];
  return out;
}

/** A token with the few tokens before it in its block, for tables: "…ctx[token]". */
export function inContext(v, i, before = 4) {
  const code = el("code", "tok-ctx");
  let start = i;
  while (start > 0 && i - start < before && v.block[start - 1] === v.block[i]
    && v.source[start - 1] === v.source[i] && v.position[start - 1] === v.position[start] - 1) start--;
  const ctx = v.tokens.slice(start, i).join("").replace(/\s+/g, " ");
  code.append(el("span", "muted", (start > 0 ? "…" : "") + ctx), el("mark", "", visible(v.tokens[i])));
  return code;
}

/** Whether the probe holds tokens of more than one source (held-out, general text, training). */
export function mixedSources(v) {
  return v.source.some((s) => s !== v.source[0]);
}

// Where one token's text ends and the next starts: a new source (with its label) or a new block.
function breakBefore(v, i) {
  if (i === 0) return mixedSources(v) ? "source" : null;
  if (v.source[i] !== v.source[i - 1]) return "source";
  if (v.block[i] !== v.block[i - 1] || v.position[i] !== v.position[i - 1] + 1) return "gap";
  return null;
}

export class TokenHeat {
  /** box: the scrolling .tokens element; describe(i): the tooltip's content for token i. */
  constructor(box, describe) {
    installColours();
    this.box = box;
    this.describe = describe;
    this.tip = el("div", "tok-tip");
    this.tip.hidden = true;
    this.tip.setAttribute("role", "tooltip");
    document.body.append(this.tip);
    this.spans = [];
    this.codes = [];
    this.fingerprint = null;
    this.skip = () => false; // tokens the arrows pass over (a class filter)
    this.shown = -1;
    this.wire();
  }

  /** Build the spans for a probe; false (nothing rebuilt) when it follows the same tokens. */
  build(v) {
    if (v.fingerprint === this.fingerprint && this.spans.length === v.n_tokens) return false;
    const frag = document.createDocumentFragment();
    this.spans = new Array(v.n_tokens);
    this.codes = new Array(v.n_tokens).fill("");
    for (let i = 0; i < v.n_tokens; i++) {
      const brk = breakBefore(v, i);
      if (brk) {
        const mark = brk === "source" ? el("span", "tok-src", v.sources[v.source[i]].label) : el("span", "tok-gap");
        mark.setAttribute("aria-hidden", "true");
        frag.append(mark);
      }
      const span = document.createElement("span");
      span.className = "tok";
      span.textContent = v.tokens[i];
      span.dataset.i = String(i);
      span.tabIndex = i === 0 ? 0 : -1;
      this.spans[i] = span;
      frag.append(span);
    }
    this.box.replaceChildren(frag);
    this.fingerprint = v.fingerprint;
    this.hide();
    return true;
  }

  /** Give each token the class codeOf(i) (a colour bin, plus marks); returns how many changed. */
  paint(codeOf) {
    let changed = 0;
    for (let i = 0; i < this.spans.length; i++) {
      const code = codeOf(i);
      if (code !== this.codes[i]) {
        this.spans[i].className = `tok ${code}`;
        this.codes[i] = code;
        changed++;
      }
    }
    if (this.shown >= 0 && !this.tip.hidden) this.show(this.shown);
    return changed;
  }

  /** Scroll token i into view and focus it (its tooltip follows focus). */
  focus(i) {
    const span = this.spans[i];
    if (!span) return;
    span.scrollIntoView({ block: "nearest" });
    span.focus({ preventScroll: true });
  }

  show(i) {
    const span = this.spans[i];
    if (!span) return;
    this.shown = i;
    this.tip.replaceChildren(this.describe(i));
    this.tip.hidden = false;
    const r = span.getBoundingClientRect();
    const left = Math.min(r.left, window.innerWidth - this.tip.offsetWidth - 8);
    let top = r.bottom + 6;
    if (top + this.tip.offsetHeight > window.innerHeight - 8) top = Math.max(8, r.top - this.tip.offsetHeight - 6);
    this.tip.style.left = `${Math.max(8, left)}px`;
    this.tip.style.top = `${top}px`;
  }

  hide() {
    this.tip.hidden = true;
    this.shown = -1;
  }

  // The next token the arrows reach from i in direction step (±1), passing over skipped ones.
  next(i, step) {
    for (let j = i + step; j >= 0 && j < this.spans.length; j += step) if (!this.skip(j)) return j;
    return i;
  }

  wire() {
    const indexOf = (target) => {
      const span = target.closest && target.closest(".tok[data-i]");
      return span && this.box.contains(span) ? Number(span.dataset.i) : -1;
    };
    this.box.addEventListener("mouseover", (ev) => {
      const i = indexOf(ev.target);
      if (i >= 0) this.show(i);
    });
    this.box.addEventListener("mouseleave", () => {
      if (!this.box.contains(document.activeElement)) this.hide();
    });
    this.box.addEventListener("focusin", (ev) => {
      const i = indexOf(ev.target);
      if (i < 0) return;
      for (const s of this.box.querySelectorAll('.tok[tabindex="0"]')) s.tabIndex = -1;
      this.spans[i].tabIndex = 0;
      this.show(i);
    });
    this.box.addEventListener("focusout", (ev) => {
      if (!ev.relatedTarget || indexOf(ev.relatedTarget) < 0) this.hide();
    });
    this.box.addEventListener("keydown", (ev) => this.onKey(ev, indexOf(ev.target)));
    // A scroll moves the tooltip with its token while that token has the focus or the pointer;
    // else hides it.
    document.addEventListener("scroll", () => {
      const span = this.spans[this.shown];
      if (span && (span === document.activeElement || span.matches(":hover"))) this.show(this.shown);
      else this.hide();
    }, true);
  }

  onKey(ev, i) {
    if (i < 0) return;
    if (ev.key === "Escape") { this.hide(); return; }
    const last = this.spans.length - 1;
    const moves = { ArrowRight: () => this.next(i, 1), ArrowDown: () => this.next(i, 1),
      ArrowLeft: () => this.next(i, -1), ArrowUp: () => this.next(i, -1),
      Home: () => (this.skip(0) ? this.next(0, 1) : 0), End: () => (this.skip(last) ? this.next(last, -1) : last) };
    if (!(ev.key in moves)) return;
    ev.preventDefault();
    this.focus(moves[ev.key]());
  }
}
