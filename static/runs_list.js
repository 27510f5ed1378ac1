// The runs list: live rows while any run is active, and picking runs to compare.

import { $, $$, api, localTimes, pageData, renderRow } from "./runs_common.js";

function initRunsList(data) {
  localTimes();
  const picks = () => $$(".pick:checked").map((c) => c.value);
  const button = $("#compare-selected");
  for (const c of $$(".pick")) c.addEventListener("change", () => { button.disabled = picks().length < 2; });
  button.addEventListener("click", () => { location.href = `/compare?runs=${picks().join(",")}`; });
  let runs = data.runs;
  async function poll() {
    if (!runs.some((r) => data.facts.active.includes(r.status))) return;
    const res = await api("GET", "/api/runs");
    if (res.ok) {
      const shown = $$("tr[data-run-id]").map((tr) => tr.dataset.runId).join();
      if (res.data.runs.map((r) => r.id).join() !== shown) { location.reload(); return; }
      runs = res.data.runs;
      for (const r of runs) renderRow($(`tr[data-run-id="${r.id}"]`), r);
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
}

initRunsList(pageData("runs-data"));
