/* A token-level compare drawn: b − a of each token's loss as a heatmap (blue: b predicts it
   better, red: worse), a summary, and the tokens where b gains and loses most. Used by the
   compare page (two runs) and the study page (two variants, mean over seeds, with the tokens
   whose difference has one sign in every seed marked). The spans stay while the tokens do. */
import { cell } from "../common/dom.js";
import { DIVERGING, gradientCss } from "../inspect/colours.js";
import { el, fmt, pct, visible } from "../inspect/view.js";
import { head, tokenButton } from "./token_carto.js";
import { colourClass, robustTop, TokenHeat } from "./token_heat.js";
import { bucketOf } from "./token_tip.js";

const LISTED = 15;

// "mean −0.667 nats, 52.8% of them better": a summary's mean and b's share of better tokens.
function stats(s) {
  return s.n ? `mean ${fmt(s.mean, 3)} nats, ${pct(s.fraction_lower_in_b, 1)} of them better` : "no tokens";
}

/** A select's options ([value, text] pairs), keeping its value where it is still offered. */
export function fillSelect(select, items, value) {
  select.replaceChildren(...items.map(([id, text]) => {
    const o = el("option", "", text);
    o.value = id;
    return o;
  }));
  if (items.some(([id]) => id === value)) select.value = value;
}

/** The step picker's choices: the last evaluation, or any step every compared record holds. */
export function fillSteps(select, steps) {
  fillSelect(select, [["", "the last evaluation"], ...steps.map((s) => [String(s), `step ${s}`])], select.value);
}

export class DiffView {
  /** root: the section holding .tok-heat, .tok-legend, .tok-summary, .tok-message, tables. */
  constructor(root) {
    this.root = root;
    this.c = null;
    this.heat = new TokenHeat(root.querySelector(".tok-heat"), (i) => this.tip(i));
  }

  part(cls) {
    return this.root.querySelector(cls);
  }

  /** Show a compare: c = {v (the answer), diff, names: [a, b], when (the steps, in words),
      loss? ([a's, b's]), consistent?, n_seeds?}. */
  show(c) {
    this.c = c;
    this.heat.build(c.v);
    const top = robustTop([c.diff.map((x) => (x === null ? NaN : x))], 0.1);
    this.heat.paint((i) => colourClass(c.diff[i], top, true) + (c.consistent && c.consistent[i] ? " cons" : ""));
    this.legend(top);
    this.summary();
    this.tables();
    this.part(".tok-message").hidden = true;
    this.part(".tok-result").hidden = false;
    for (const name of this.root.querySelectorAll(".tok-b")) name.textContent = c.names[1];
    this.part(".tok-heat").dataset.shown = `${c.names.join(",")} ${c.when}`;
  }

  /** Say why there is nothing to compare (the API's own words: 404, 422). */
  message(text) {
    const box = this.part(".tok-message");
    box.textContent = typeof text === "string" ? text : JSON.stringify(text);
    box.hidden = false;
    this.part(".tok-result").hidden = true;
  }

  legend(top) {
    const [a, b] = this.c.names;
    const bar = el("span", "bar");
    bar.style.background = gradientCss(DIVERGING);
    const parts = [el("span", "end", `−${fmt(top, 1)}: ${b} better`), bar,
      el("span", "end", `+${fmt(top, 1)} nats: ${b} worse than ${a}`)];
    if (this.c.consistent) parts.push(el("span", "tok cons sample", "same sign in every seed"));
    this.part(".tok-legend").replaceChildren(...parts);
  }

  summary() {
    const s = this.c.v.summary;
    const [a, b] = this.c.names;
    const bucket = (id) => this.c.v.buckets.find((x) => x.id === id);
    let text = `${b} − ${a} at ${this.c.when}, over ${s.n} tokens: ${stats(s)} under ${b}. ` +
      `${bucket("low").label} tokens: ${stats(s.low)}; ${bucket("high").label}: ${stats(s.high)}.`;
    if (this.c.consistent) {
      text += ` ${this.c.v.n_consistent} tokens differ the same way in all ${this.c.n_seeds} seeds.`;
    }
    this.part(".tok-summary").textContent = text;
  }

  tables() {
    const { v, diff } = this.c;
    const gains = v.order.filter((i) => diff[i] !== null && diff[i] < 0).slice(0, LISTED);
    const losses = v.order.filter((i) => diff[i] !== null && diff[i] > 0).reverse().slice(0, LISTED);
    this.table(this.part(".tok-gains"), gains);
    this.table(this.part(".tok-losses"), losses);
  }

  table(table, indices) {
    const c = this.c;
    const sides = c.loss ? c.names.map((name) => [name, "num side"]) : [];
    const cols = [["token"], ...sides, ["b − a", "num"], ["bucket"]];
    if (c.consistent) cols.push(["every seed"]);
    head(table, cols);
    if (!indices.length) { // say so rather than show an empty table
      const tr = document.createElement("tr");
      cell(tr, "No token.", "muted").colSpan = cols.length;
      table.tBodies[0].replaceChildren(tr);
      return;
    }
    table.tBodies[0].replaceChildren(...indices.map((i) => {
      const tr = document.createElement("tr");
      tr.dataset.i = String(i);
      cell(tr, tokenButton(c.v, i, (j) => this.heat.focus(j)));
      if (c.loss) for (const side of c.loss) cell(tr, fmt(side[i]), "num side");
      cell(tr, fmt(c.diff[i]), "num diff");
      cell(tr, bucketOf(c.v, i).label, "small");
      if (c.consistent) cell(tr, c.consistent[i] ? "yes" : "no", "small");
      return tr;
    }));
  }

  tip(i) {
    const c = this.c;
    const box = el("div");
    box.append(el("div", "tip-token", visible(c.v.tokens[i])));
    box.append(el("div", "tip-class", bucketOf(c.v, i).label));
    const dl = el("dl");
    const add = (k, value) => dl.append(el("dt", "", k), el("dd", "", value));
    if (c.loss) c.names.forEach((name, k) => add(`loss, ${name}`, fmt(c.loss[k][i])));
    add(`${c.names[1]} − ${c.names[0]}`, `${fmt(c.diff[i])} nats${c.n_seeds ? ` (mean of ${c.n_seeds} seeds)` : ""}`);
    if (c.consistent) add("every seed", c.consistent[i] ? "the same sign" : "not the same sign");
    add("starting entropy", `${fmt(c.v.start_entropy[i])} nats`);
    box.append(dl);
    return box;
  }
}
