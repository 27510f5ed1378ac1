/* The Tokens view's cartography: counts per class and entropy bucket (each class name a filter of
   the heatmap), the tokens that make the rebound and, where training tokens are followed, the
   ones dropped most. Picking a token focuses it in the heatmap. */
import { cell } from "../common/dom.js";
import { el, fmt } from "../inspect/view.js";
import { inContext } from "./token_heat.js";
import { bucketOf, dropsText } from "./token_tip.js";

export function head(table, names) {
  const tr = document.createElement("tr");
  for (const [text, cls] of names) tr.append(el("th", cls || "", text));
  table.tHead.replaceChildren(tr);
}

/** A button holding a token in its context; onPick(i) when pressed. */
export function tokenButton(v, i, onPick) {
  const button = el("button", "link tok-pick");
  button.type = "button";
  button.dataset.i = String(i);
  button.append(inContext(v, i));
  button.addEventListener("click", () => onPick(i));
  return button;
}

/** Counts per class (rows) and bucket (columns); a class's name filters the heatmap to it. */
export function renderCounts(table, v, onFilter) {
  const carto = v.cartography;
  head(table, [["class"], ...v.buckets.map((b) => [b.label, "num"]), ["all", "num"]]);
  const rows = carto.classes.map((c, k) => {
    const tr = document.createElement("tr");
    tr.dataset.class = c.id;
    const show = el("button", "link", c.label);
    show.type = "button";
    show.title = `${c.help}: show only these tokens`;
    show.addEventListener("click", () => onFilter(String(k)));
    cell(tr, show);
    for (const b of v.buckets) cell(tr, String(carto.counts[c.id][b.id]), "num");
    cell(tr, String(carto.counts[c.id].all), "num");
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
}

/** The tokens whose loss rose most from their best to the last evaluation. */
export function renderRebound(table, v, onPick) {
  const carto = v.cartography;
  const label = (id) => (carto.classes.find((c) => c.id === id) || { label: id }).label;
  head(table, [["token"], ["rise", "num"], ["best", "num side"], ["final", "num side"], ["class"], ["bucket", "side"]]);
  const rows = carto.top_rebound.map((t) => {
    const tr = document.createElement("tr");
    tr.dataset.i = String(t.index);
    cell(tr, tokenButton(v, t.index, onPick));
    cell(tr, `+${fmt(t.rise)}`, "num");
    cell(tr, `${fmt(t.best_loss)} @ ${t.best_step}`, "num side");
    cell(tr, fmt(t.final_loss), "num side");
    cell(tr, label(t.class), "small");
    cell(tr, bucketOf(v, t.index).label, "small side");
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = rows.length === 0;
}

/** Training tokens by times dropped (at the last evaluation), with what became of them. */
export function renderDrops(card, v, onPick, top = 12) {
  card.hidden = !v.drops;
  if (!v.drops) return;
  const carto = v.cartography;
  const last = v.drops[v.drops.length - 1];
  const followed = [];
  for (let i = 0; i < last.length; i++) if (last[i] !== null) followed.push(i);
  const dropped = followed.filter((i) => last[i] > 0);
  const kept = dropped.filter((i) => carto.classes[carto.class[i]].id === "learned");
  card.querySelector(".tok-drops-summary").textContent =
    `${followed.length} training tokens followed; ${dropped.length} dropped at least once, ` +
    `${kept.length} of those memorised anyway (learned and kept).`;
  const table = card.querySelector("table");
  head(table, [["token"], ["dropped", "num"], ["what became of it"]]);
  const rows = dropped.sort((a, b) => last[b] - last[a]).slice(0, top).map((i) => {
    const tr = document.createElement("tr");
    tr.dataset.i = String(i);
    const klass = carto.classes[carto.class[i]];
    cell(tr, tokenButton(v, i, onPick));
    cell(tr, String(last[i]), "num");
    cell(tr, dropsText(last[i], klass.id, klass.label), "small");
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
}
