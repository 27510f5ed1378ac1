// The run page's Tokens view (docs/tokens.md): the probe's tokens as a heatmap at a chosen
// evaluation, coloured by loss, entropy or their change; a step slider with play; hover or focus
// for a token's trajectory; the cartography, whose classes filter the heatmap. It reads
// GET /api/runs/{id}/tokens, and reads it again when the run's events bring an evaluation the
// record it shows lacks (detail.js passes them on as "run:metrics").

import { api } from "../common/api.js";
import { $, pageData } from "../common/dom.js";
import { DIVERGING, gradientCss, VIRIDIS } from "../inspect/colours.js";
import { el, fmt } from "../inspect/view.js";
import { renderCounts, renderDrops, renderRebound } from "./token_carto.js";
import { fillSelect } from "./token_diff.js";
import { colourClass, floats, robustTop, TokenHeat } from "./token_heat.js";
import { tokenTip } from "./token_tip.js";

const PLAY_MS = 700;

// Each colour mode's value for token i at row r; the API lists the modes (colour_modes).
const VALUES = {
  loss: (d, r, i) => d.L[r][i],
  entropy: (d, r, i) => d.E[r][i],
  change_start: (d, r, i) => d.L[r][i] - d.L[0][i],
  change_best: (d, r, i) => d.L[r][i] - d.B[r][i],
};

// The record as typed arrays, each token's best loss so far at each row, and each mode's scale
// (fixed over the steps, so that scrubbing compares like with like).
function prepare(v) {
  const L = v.loss.map(floats);
  const E = v.entropy.map(floats);
  const B = [];
  let best = new Float32Array(v.n_tokens).fill(Infinity);
  for (const row of L) {
    best = best.map((b, i) => (row[i] < b ? row[i] : b));
    B.push(best);
  }
  const d = { v, L, E, B, steps: v.steps, cls: v.cartography.class, tops: {}, negative: {} };
  for (const mode of v.colour_modes.filter((m) => VALUES[m.id])) {
    const rows = L.map((row, r) => row.map((_, i) => VALUES[mode.id](d, r, i)));
    d.tops[mode.id] = robustTop(rows);
    d.negative[mode.id] = rows.some((row) => row.some((x) => x < -1e-6));
  }
  return d;
}

class TokensView {
  constructor(run) {
    this.url = run.links.tokens;
    this.recording = run.config.record_tokens !== false;
    this.d = null;
    this.loading = false;
    this.pending = []; // metric rows that arrived during a read
    this.attempt = null; // the latest attempt the run's metric rows have shown
    this.timer = null;
    this.heat = new TokenHeat($("#tok-heat"), (i) => tokenTip(this.d, i, this.row()));
    this.slider = $("#tok-step");
    this.slider.addEventListener("input", () => this.paint());
    $("#tok-colour").addEventListener("change", () => this.paint());
    $("#tok-filter").addEventListener("change", () => this.paint());
    $("#tok-scale").addEventListener("change", () => this.paint());
    $("#tok-play").addEventListener("click", () => this.toggle());
    document.addEventListener("run:metrics", (e) => this.onMetrics(e.detail));
  }

  row() {
    return Number(this.slider.value);
  }

  async load() {
    this.loading = true;
    try {
      const res = await api("GET", this.url);
      if (res.ok) this.show(res.data);
      else if (!this.d) this.message(res.data.detail);
    } catch (err) {
      if (!this.d) this.message(String(err.message || err));
    } finally {
      this.loading = false;
    }
    const rows = this.pending;
    this.pending = [];
    if (rows.length) this.onMetrics(rows);
  }

  // A new answer: the spans stay when the tokens are the same; the slider keeps its step, or
  // follows the last evaluation when it was on the last one.
  show(v) {
    const before = this.d;
    const atLast = !before || this.row() === before.steps.length - 1;
    const step = before ? before.steps[this.row()] : null;
    this.d = prepare(v);
    this.heat.build(v);
    const colour = $("#tok-colour");
    fillSelect(colour, v.colour_modes.filter((m) => VALUES[m.id]).map((m) => [m.id, m.label]), colour.value);
    const carto = v.cartography;
    fillSelect($("#tok-filter"), [["", `every class (${v.n_tokens})`],
      ...carto.classes.map((c, k) => [String(k), `${c.label} (${carto.counts[c.id].all})`])], $("#tok-filter").value);
    this.slider.max = String(v.steps.length - 1);
    const keep = v.steps.indexOf(step);
    this.slider.value = String(atLast || keep < 0 ? v.steps.length - 1 : keep);
    this.slider.disabled = v.steps.length < 2;
    $("#tok-play").disabled = v.steps.length < 2;
    renderCounts($("#tok-counts"), v, (k) => this.filter(k));
    renderRebound($("#tok-rebound"), v, (i) => this.pick(i));
    renderDrops($("#tok-drops"), v, (i) => this.pick(i));
    $("#tok-thresholds").textContent = "Margins (nats): " +
      Object.entries(carto.thresholds).map(([k, x]) => `${k} ${x}`).join(", ") + ".";
    $("#tok-message").hidden = true;
    $("#tok-body").hidden = false;
    this.paint();
  }

  message(text) {
    $("#tok-message").textContent = typeof text === "string" ? text : JSON.stringify(text);
    $("#tok-message").hidden = false;
  }

  paint() {
    const d = this.d;
    if (!d) return;
    const r = this.row();
    const mode = d.v.colour_modes.find((m) => m.id === $("#tok-colour").value);
    const value = VALUES[mode.id];
    const top = $("#tok-scale").value === "fixed" ? mode.fixed_max : d.tops[mode.id];
    const only = $("#tok-filter").value === "" ? -1 : Number($("#tok-filter").value);
    this.heat.skip = only < 0 ? () => false : (i) => d.cls[i] !== only;
    const dim = (i) => (only >= 0 && d.cls[i] !== only ? " dim" : "");
    this.heat.paint((i) => colourClass(value(d, r, i), top, mode.signed) + dim(i));
    this.legend(mode, top, d.negative[mode.id]);
    const step = d.steps[r];
    const mean = d.v.eval_loss[r];
    this.slider.setAttribute("aria-valuetext", `step ${step}`);
    $("#tok-step-text").textContent = `step ${step} (evaluation ${r + 1} of ${d.steps.length})` +
      (mean === null ? "" : ` · ${d.v.eval_metric.label} ${fmt(mean, 4)}`);
    Object.assign($("#tok-heat").dataset, { step: String(step), mode: mode.id, filter: String(only) });
  }

  // A signed mode whose values never fall below 0 (change since its best) shows its upper half.
  legend(mode, top, negative) {
    const bar = el("span", "bar");
    const half = mode.signed && !negative;
    const stops = !mode.signed ? VIRIDIS : half ? DIVERGING.slice(DIVERGING.length >> 1) : DIVERGING;
    bar.style.background = gradientCss(stops);
    const ends = !mode.signed || half ? ["0", `${half ? "+" : ""}${fmt(top, 1)} ${mode.unit} or more`]
      : [`−${fmt(top, 1)} fell`, `+${fmt(top, 1)} ${mode.unit} rose`];
    $("#tok-legend").replaceChildren(el("span", "", `${mode.label}:`), el("span", "end", ends[0]), bar,
      el("span", "end", ends[1]), el("span", "tok none sample", "no value"));
  }

  toggle() {
    if (this.timer) { this.stop(); return; }
    if (this.row() >= Number(this.slider.max)) this.slider.value = "0";
    this.paint();
    this.timer = setInterval(() => {
      if (this.row() >= Number(this.slider.max)) { this.stop(); return; }
      this.slider.value = String(this.row() + 1);
      this.paint();
    }, PLAY_MS);
    $("#tok-play").textContent = "Pause";
    $("#tok-play").setAttribute("aria-pressed", "true");
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    $("#tok-play").textContent = "Play";
    $("#tok-play").setAttribute("aria-pressed", "false");
  }

  filter(k) {
    $("#tok-filter").value = k;
    this.paint();
    $("#tok-heat").scrollIntoView({ block: "nearest" });
  }

  pick(i) {
    this.heat.focus(i);
  }

  // New metric rows: read the record again when the latest attempt brings an evaluation it lacks,
  // or a new attempt starts (a resume cuts the record back, a restart begins it anew); before
  // there is a record, on any row (the step-0 evaluation writes the first one).
  onMetrics(rows) {
    if (!this.recording || !rows.length) return;
    if (this.loading) { this.pending = this.pending.concat(rows); return; }
    const attempt = rows.reduce((a, r) => Math.max(a, r.attempt || 0), 0);
    const newAttempt = this.attempt !== null && attempt > this.attempt;
    this.attempt = Math.max(this.attempt || 0, attempt);
    const v = this.d && this.d.v;
    const fresh = (r) => (r.attempt || 0) === this.attempt && r.name === v.eval_metric.name
      && !v.all_steps.includes(r.step);
    if (!v || newAttempt || rows.some(fresh)) this.load();
  }
}

const run = pageData("run-data");
if (run && $("#tokens-card")) new TokensView(run).load();
