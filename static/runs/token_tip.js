/* A token's story in the Tokens view's tooltip: its class and bucket, its loss and entropy at the
   shown step, its best, its starting-model entropy, its drops, and its trajectory (loss and
   entropy per evaluation) as a small SVG. Text reaches the DOM as textContent only. */
import { el, fmt, visible } from "../inspect/view.js";
import { mixedSources } from "./token_heat.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 260;
const H = 100;
const PAD = { l: 30, r: 8, t: 8, b: 18 };

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// The points of a series as an SVG path, a new segment after each missing value.
function path(steps, values, sx, sy) {
  let d = "";
  let pen = "M";
  values.forEach((y, r) => {
    if (!Number.isFinite(y)) { pen = "M"; return; }
    d += `${pen}${sx(steps[r]).toFixed(1)},${sy(y).toFixed(1)}`;
    pen = "L";
  });
  return d;
}

/** Loss (solid) and entropy (dashed) of one token per evaluation; the shown step marked. */
export function trajectory(steps, loss, entropy, row) {
  const top = Math.max(0.5, ...loss.filter(Number.isFinite), ...entropy.filter(Number.isFinite));
  const first = steps[0];
  const last = steps[steps.length - 1];
  const span = last - first || 1;
  const sx = (s) => PAD.l + ((s - first) / span) * (W - PAD.l - PAD.r);
  const sy = (y) => PAD.t + (1 - y / top) * (H - PAD.t - PAD.b);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "traj",
    role: "img", "aria-label": "loss and entropy per evaluation" });
  chart.append(svg("line", { x1: PAD.l, y1: sy(0), x2: W - PAD.r, y2: sy(0), class: "traj-axis" }));
  chart.append(svg("line", { x1: sx(steps[row]), y1: PAD.t, x2: sx(steps[row]), y2: sy(0), class: "traj-now" }));
  chart.append(svg("path", { d: path(steps, entropy, sx, sy), class: "traj-entropy" }));
  chart.append(svg("path", { d: path(steps, loss, sx, sy), class: "traj-loss" }));
  loss.forEach((y, r) => {
    if (!Number.isFinite(y)) return;
    chart.append(svg("circle", { cx: sx(steps[r]), cy: sy(y), r: r === row ? 3.2 : 1.8, class: "traj-dot" }));
  });
  chart.append(svg("text", { x: PAD.l - 4, y: sy(top) + 8, class: "traj-label", "text-anchor": "end" }, fmt(top, 1)));
  chart.append(svg("text", { x: PAD.l - 4, y: sy(0), class: "traj-label", "text-anchor": "end" }, "0"));
  chart.append(svg("text", { x: sx(first), y: H - 4, class: "traj-label" }, `step ${first}`));
  chart.append(svg("text", { x: sx(last), y: H - 4, class: "traj-label", "text-anchor": "end" }, String(last)));
  return chart;
}

/** Token i's entropy bucket ({id, label, help}): low when its starting entropy is at or below
    the split. */
export function bucketOf(v, i) {
  const id = v.low_entropy[i] ? "low" : "high";
  return v.buckets.find((b) => b.id === id);
}

/** What a training token's drop count says beside its class: "dropped 5 times, memorised anyway". */
export function dropsText(n, classId, classLabel) {
  const times = n === 1 ? "once" : `${n} times`;
  if (n === 0) return `never dropped; ${classLabel}`;
  return classId === "learned" ? `dropped ${times}, memorised anyway` : `dropped ${times}; ${classLabel}`;
}

/** The tooltip's content for token i of the Tokens view at row `row` (d: the view's data). */
export function tokenTip(d, i, row) {
  const v = d.v;
  const carto = v.cartography;
  const klass = carto.classes[carto.class[i]];
  const bucket = bucketOf(v, i);
  const box = el("div");
  box.append(el("div", "tip-token", visible(v.tokens[i])));
  const head = el("div", "tip-class", `${klass.label} · ${bucket.label}`);
  head.title = `${klass.help}; ${bucket.help}`;
  box.append(head);
  const dl = el("dl");
  const add = (k, value) => dl.append(el("dt", "", k), el("dd", "", value));
  const loss = d.L.map((r) => r[i]);
  const entropy = d.E.map((r) => r[i]);
  add("loss", `${fmt(loss[row])} at step ${d.steps[row]} (${fmt(loss[0])} at ${d.steps[0]})`);
  add("best loss", carto.best_step[i] === null ? "–" : `${fmt(carto.best_loss[i])} at step ${carto.best_step[i]}`);
  add("entropy", `${fmt(entropy[row])} at step ${d.steps[row]}`);
  add("starting entropy", `${fmt(v.start_entropy[i])} nats (split ${fmt(v.entropy_split)})`);
  if (mixedSources(v)) add("from", v.sources[v.source[i]].label);
  if (v.drops && v.drops[row][i] !== null) add("drops", dropsText(v.drops[row][i], klass.id, klass.label));
  box.append(dl, trajectory(d.steps, loss, entropy, row));
  const key = el("div", "traj-key");
  key.append(el("span", "k-loss", "loss"), el("span", "k-entropy", "entropy"), el("span", "k-now", "shown step"));
  box.append(key);
  return box;
}
