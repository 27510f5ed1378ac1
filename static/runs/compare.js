// The compare page: runs side by side, one colour per run, live while any is active.

import { api } from "../common/api.js";
import { showBadge } from "../common/badges.js";
import { $, $$, pageData, throttled } from "../common/dom.js";
import { fmtLoss } from "../common/format.js";
import { chartControls, COLORS, drawPanels, Series } from "./charts.js";
import { renderProgress } from "./rows.js";

function initCompare(data) {
  $$(".swatch").forEach((s) => { s.style.background = COLORS[Number(s.dataset.index) % COLORS.length]; });
  let runs = [];
  function load(d) {
    runs = d.runs.map((r) => {
      const series = new Series();
      series.add(d.metrics[r.id] || []);
      const label = r.name || `${r.method} ${r.id.slice(-4)}`;
      return { id: r.id, label, series, attempt: Math.max(1, r.attempts), tokensPerStep: r.tokens_per_step };
    });
    d.runs.forEach((r, i) => {
      const tr = $(`tr[data-run-id="${r.id}"]`);
      showBadge(tr.querySelector(".status-cell"), r, data.facts);
      renderProgress(tr.querySelector(".progress-cell"), r);
      tr.querySelector(".best").textContent = fmtLoss(d.table[i].best_eval_loss);
      for (const td of $$(".final-metric", tr)) td.textContent = fmtLoss(d.table[i].final[td.dataset.name]);
      for (const td of $$(".bench-metric", tr)) td.textContent = fmtLoss(d.table[i].benchmarks[td.dataset.name]);
      const step = d.table[i].best_step;
      tr.querySelector(".best-step").firstChild.textContent = step === null ? "—" : String(step);
    });
  }
  const redraw = throttled(() => drawPanels(data.panels, runs, true, data.facts));
  chartControls(redraw, "compare");
  load(data);
  redraw();
  const ids = data.runs.map((r) => r.id).join(",");
  let active = data.runs.some((r) => data.facts.active.includes(r.status));
  const live = $("#live-state");
  async function poll() {
    if (!active) { live.textContent = ""; return; }
    live.textContent = "live: updating every 2 s";
    const res = await api("GET", `/api/compare?runs=${encodeURIComponent(ids)}`);
    if (res.ok) {
      load(res.data);
      redraw();
      active = res.data.runs.some((r) => data.facts.active.includes(r.status));
    }
    setTimeout(poll, 2000);
  }
  poll();
}

initCompare(pageData("compare-data"));
