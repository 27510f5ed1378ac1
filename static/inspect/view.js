/* The Inspect page's token view: colour scale, token spans, legend, tooltip and keyboard moves.
   User text reaches the DOM through textContent only, never innerHTML. */

const N_BINS = 32;
const VIRIDIS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884",
  "#44bf70", "#7ad151", "#bddf26", "#fde725"];
const DIVERGING = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582",
  "#d6604d", "#b2182b"];
// GLTR's bucket colours: top-10 green, top-100 yellow, top-1000 red, beyond purple.
const GLTR = ["#6fdc8c", "#f5e663", "#ff8a80", "#c9a0ff"];
const TINT = 0.45; // share of white mixed into token backgrounds

// ---------------------------------------------------------------- small helpers

export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (!Number.isFinite(x)) return x > 0 ? "∞" : "−∞";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
  return x.toFixed(digits);
}

export function pct(part, whole) {
  return whole ? `${((100 * part) / whole).toFixed(1)}%` : "–";
}

// Whitespace made visible for the tooltip; the token view keeps the real text.
export function visible(text) {
  if (text === "") return "(empty piece)";
  return text.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥");
}

// ---------------------------------------------------------------- colours

function hexToRgb(hex) {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

function interpolate(stops, t) {
  const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const a = hexToRgb(stops[i]);
  const b = hexToRgb(stops[i + 1]);
  return a.map((c, k) => Math.round(c + (b[k] - c) * (x - i)));
}

function luminance(rgb) {
  const lin = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.04045) / 1.055, 2.4);
  });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
}

// Backgrounds are the scale mixed with white: lightness stays monotone (still a perceptual
// scale) while dark text and the red drop marks stay readable on every bin.
function tint(stops, t) {
  return interpolate(stops, t).map((c) => Math.round(c + (255 - c) * TINT));
}

/** One CSS class per colour bin (c0.. entropy, d0.. difference): spans get a class, not a style. */
export function installColourClasses() {
  const rules = [];
  const add = (prefix, stops) => {
    for (let b = 0; b < N_BINS; b++) {
      const rgb = tint(stops, b / (N_BINS - 1));
      const fg = luminance(rgb) > 0.18 ? "#111" : "#fff";
      rules.push(`.tokens .${prefix}${b}{background:rgb(${rgb.join(",")});color:${fg}}`);
    }
  };
  add("c", VIRIDIS);
  add("d", DIVERGING);
  GLTR.forEach((hex, b) => {
    rules.push(`.tokens .r${b}, .legend .tok.sample.r${b}{background:${hex};color:#111}`);
  });
  const style = document.createElement("style");
  style.textContent = rules.join("\n");
  document.head.appendChild(style);
}

function gradientCss(stops) {
  const parts = [];
  for (let i = 0; i <= 10; i++) parts.push(`rgb(${tint(stops, i / 10).join(",")})`);
  return `linear-gradient(to right, ${parts.join(", ")})`;
}

/** What a token is coloured by in each mode; probability is turned over (1 − p) so that, as with
    entropy, dark means predictable. Rank gives a bucket index (see rankBucket). */
export function colourValue(tok, mode) {
  if (mode === "surprisal") return tok.surprisal;
  if (mode === "prob") return tok.prob === null ? null : 1 - tok.prob;
  return tok.entropy;
}

export function rankBucket(rank, buckets) {
  if (rank === null) return null;
  const b = buckets.findIndex((top) => rank <= top);
  return b === -1 ? buckets.length : b;
}

/** The colour domains: 0..top for the mode (auto: this text's maximum; fixed: the mode's
    fixed_max, the same for every text), and ±max |difference| for the compare view. */
export function computeScale(result, colour) {
  const mode = colour.mode;
  let top = 1;
  if (mode === "entropy" || mode === "surprisal") {
    if (colour.fixed) {
      top = colour.fixedMax;
    } else {
      let hmax = 0;
      for (const pane of result.panes) {
        for (const t of pane.score.tokens) {
          const v = colourValue(t, mode);
          if (v !== null && v > hmax) hmax = v;
        }
      }
      top = Math.max(0.5, Math.ceil(hmax * 2) / 2);
    }
  }
  let dmax = 0;
  for (const d of result.delta || []) if (d !== null && Math.abs(d) > dmax) dmax = Math.abs(d);
  return { mode, top, buckets: colour.buckets, unit: colour.unit, dmax: Math.max(0.1, dmax) };
}

function bin(value, lo, hi) {
  if (value === null) return null;
  const t = (value - lo) / (hi - lo);
  return Math.min(N_BINS - 1, Math.max(0, Math.round(t * (N_BINS - 1))));
}

function colourClass(tok, i, opts) {
  if (opts.delta) {
    const b = bin(opts.delta[i], -opts.scale.dmax, opts.scale.dmax);
    return b === null ? "tok none" : `tok d${b}`;
  }
  if (opts.scale.mode === "rank") {
    const b = rankBucket(tok.rank, opts.scale.buckets);
    return b === null ? "tok none" : `tok r${b}`;
  }
  const b = bin(colourValue(tok, opts.scale.mode), 0, opts.scale.top);
  return b === null ? "tok none" : `tok c${b}`;
}

// ---------------------------------------------------------------- tokens

/** Build a pane's spans once; later policy changes only swap class names (see applyMarks). */
export function renderPane(pane, index, opts) {
  const box = el("div", "pane");
  box.dataset.pane = String(index);
  const head = el("div", "pane-head");
  head.appendChild(el("strong", "", opts.delta ? "Entropy difference B − A (marks: A's policy)" : pane.label));
  head.appendChild(el("span", "hint", `${pane.score.n_tokens} tokens · ${pane.score.spec}`));
  box.appendChild(head);
  const tokens = el("div", "tokens");
  tokens.setAttribute("role", "group");
  tokens.setAttribute("aria-label", `Tokens of ${pane.label}; arrow keys move between tokens`);
  const frag = document.createDocumentFragment();
  const n = pane.score.tokens.length;
  pane.spans = new Array(n);
  pane.baseClass = new Array(n);
  pane.score.tokens.forEach((tok, i) => {
    const span = document.createElement("span");
    let cls = colourClass(tok, i, opts);
    if (tok.text.includes("\n")) cls += " nl";
    if (tok.text === "") cls += " empty";
    span.className = cls;
    span.textContent = tok.text; // never innerHTML: the text is the user's
    span.dataset.i = String(i);
    span.tabIndex = i === 0 ? 0 : -1; // roving tabindex: one stop per pane
    pane.baseClass[i] = cls;
    pane.spans[i] = span;
    frag.appendChild(span);
  });
  tokens.appendChild(frag);
  box.appendChild(tokens);
  pane.marks = new Uint8Array(n); // 0 none, 1 candidate kept, 2 dropped
  return box;
}

/** Swap the mark classes of the tokens whose mark changed; returns how many changed. */
export function applyMarks(pane) {
  const { candidate, dropped } = pane.sel;
  const marks = pane.marks;
  let changed = 0;
  for (let i = 0; i < marks.length; i++) {
    const m = dropped[i] ? 2 : candidate[i] ? 1 : 0;
    if (m !== marks[i]) {
      marks[i] = m;
      pane.spans[i].className = pane.baseClass[i] + (m === 2 ? " drop" : m === 1 ? " cand" : "");
      changed++;
    }
  }
  return changed;
}

const DROP_TEXT = {
  loss: "dropped: left out of the loss",
  input: "dropped: input replaced by the drop token",
  both: "dropped: input replaced and left out of the loss",
};

export function renderLegend(legend, opts) {
  legend.replaceChildren();
  const scale = el("div", "scale");
  const bar = el("span", "bar");
  bar.style.background = gradientCss(opts.delta ? DIVERGING : VIRIDIS);
  legend.dataset.mode = opts.delta ? "delta" : opts.scale.mode;
  const sc = opts.scale;
  if (opts.delta) {
    scale.appendChild(el("span", "end", `B more certain −${fmt(sc.dmax, 1)}`));
    scale.appendChild(bar);
    scale.appendChild(el("span", "end", `+${fmt(sc.dmax, 1)} nats B less certain`));
  } else if (sc.mode === "rank") {
    const names = sc.buckets.map((top) => `in the top ${top}`)
      .concat([`beyond ${sc.buckets[sc.buckets.length - 1]}`]);
    names.forEach((name, b) => {
      const item = el("span", "mark-item");
      item.appendChild(el("span", `tok sample r${b}`, "tok"));
      item.appendChild(el("span", "", `rank ${name}`));
      scale.appendChild(item);
    });
  } else if (sc.mode === "prob") {
    scale.appendChild(el("span", "end", "p = 1 likely"));
    scale.appendChild(bar);
    scale.appendChild(el("span", "end", "p = 0 unlikely"));
  } else {
    scale.appendChild(el("span", "end", `0 ${sc.mode === "entropy" ? "predictable" : "expected"}`));
    scale.appendChild(bar);
    scale.appendChild(el("span", "end", `${fmt(sc.top, 1)} ${sc.unit} ${sc.mode === "entropy" ? "uncertain" : "surprising"}`));
  }
  legend.appendChild(scale);
  const marks = el("div", "marks");
  const sample = (cls, label) => {
    const item = el("span", "mark-item");
    item.appendChild(el("span", `tok sample ${cls}`, "tok"));
    item.appendChild(el("span", "", label));
    marks.appendChild(item);
  };
  sample("drop", DROP_TEXT[opts.dropMode] || DROP_TEXT.loss);
  sample("cand", "candidate, kept this time");
  sample("none", "first token: no prediction");
  legend.appendChild(marks);
}

// ---------------------------------------------------------------- tooltip and keyboard

function showTip(tip, hit, result) {
  const tok = hit.pane.score.tokens[hit.i];
  tip.replaceChildren();
  tip.appendChild(el("div", "tip-token", visible(tok.text)));
  const mark = hit.pane.marks ? hit.pane.marks[hit.i] : 0;
  const status = tok.entropy === null ? "first token: no prediction, never dropped"
    : mark === 2 ? "dropped by the policy" : mark === 1 ? "candidate (entropy ≤ τ), kept this time"
      : "kept (entropy above τ)";
  tip.appendChild(el("div", `tip-status m${mark}`, status));
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
