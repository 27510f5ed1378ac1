/* The Inspect page's token view: token spans and their marks, and the legend (colours.js colours
   them, tooltip.js explains them). User text reaches the DOM through textContent only, never
   innerHTML. */
import { colourClass, DIVERGING, gradientCss, VIRIDIS } from "./colours.js";

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

// ---------------------------------------------------------------- tokens

/** Build a pane's spans once; later policy changes only swap class names (see applyMarks). */
export function renderPane(pane, index, opts) {
  const box = el("div", "pane");
  box.dataset.pane = String(index);
  const head = el("div", "pane-head");
  const title = opts.delta ? "Entropy difference B − A (marks: A's policy)" : pane.label;
  const hint = `${pane.score.n_tokens} tokens · ${pane.score.spec}`;
  head.title = `${title} · ${hint}`; // the head is one line, cut short on a narrow pane
  head.appendChild(el("strong", "", title));
  head.appendChild(el("span", "hint", hint));
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
    if (tok.trained === false) cls += " untrained"; // a conversation's prompt or template
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
  if (opts.untrained) sample("untrained", "prompt or template: not trained");
  legend.appendChild(marks);
}
