// The runs list: sort by any column, filter by status, method, tag and text, pick runs to compare,
// live rows while any run is active.

import { $, $$, api, localTimes, pageData, renderRow } from "./runs_common.js";

const NUMERIC = new Set(["progress", "best", "final", "disk", "started"]);

function initRunsList(data) {
  localTimes();
  const picks = () => $$(".pick:checked").map((c) => c.value);
  const button = $("#compare-selected");
  const pickChanged = () => {
    const n = picks().length;
    button.disabled = n < 2 || n > data.max_compare;
    button.textContent = n > data.max_compare ? `Compare at most ${data.max_compare}` : n >= 2 ? `Compare ${n} runs` : "Compare selected";
  };
  for (const c of $$(".pick")) c.addEventListener("change", pickChanged);
  button.addEventListener("click", () => { location.href = `/compare?runs=${picks().join(",")}`; });

  const tbody = $("#runs-table tbody");
  let sortKey = "started", descending = true;
  function sortRows() {
    const rows = $$("tr[data-run-id]", tbody);
    const key = `sort${sortKey[0].toUpperCase()}${sortKey.slice(1)}`;
    const value = (tr) => tr.dataset[key] ?? "";
    rows.sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      if (x === "" || y === "") return x === y ? 0 : x === "" ? 1 : -1; // empty last, either way
      const c = NUMERIC.has(sortKey) ? Number(x) - Number(y) : x.localeCompare(y);
      return descending ? -c : c;
    });
    for (const tr of rows) tbody.appendChild(tr);
    for (const th of $$("th[aria-sort]")) {
      th.setAttribute("aria-sort", $("button", th).dataset.sort === sortKey ? (descending ? "descending" : "ascending") : "none");
    }
  }
  for (const b of $$("button.sort")) {
    b.addEventListener("click", () => {
      descending = b.dataset.sort === sortKey ? !descending : NUMERIC.has(b.dataset.sort) && b.dataset.sort === "started";
      sortKey = b.dataset.sort;
      sortRows();
    });
  }

  function filterRows() {
    const text = $("#filter-text").value.trim().toLowerCase();
    const status = $("#filter-status").value, method = $("#filter-method").value, tag = $("#filter-tag").value;
    let shown = 0;
    for (const tr of $$("tr[data-run-id]", tbody)) {
      const ok = (!status || tr.dataset.status === status) && (!method || tr.dataset.method === method)
        && (!tag || tr.dataset.tags.split(" ").includes(tag)) && (!text || tr.dataset.text.includes(text));
      tr.hidden = !ok;
      shown += ok ? 1 : 0;
    }
    $("#shown-count").textContent = `${shown} of ${data.runs.length} runs`;
  }
  if (tbody) {
    for (const id of ["#filter-text", "#filter-status", "#filter-method", "#filter-tag"]) $(id).addEventListener("input", filterRows);
    $("#filters").addEventListener("submit", (e) => e.preventDefault());
    filterRows();
  }

  let runs = data.runs;
  async function poll() {
    if (!runs.some((r) => data.facts.active.includes(r.status))) return;
    const res = await api("GET", "/api/runs");
    if (res.ok) {
      const shown = $$("tr[data-run-id]").map((tr) => tr.dataset.runId).sort().join();
      if (res.data.runs.map((r) => r.id).sort().join() !== shown) { location.reload(); return; }
      runs = res.data.runs;
      for (const r of runs) {
        const tr = $(`tr[data-run-id="${r.id}"]`);
        renderRow(tr, r);
        Object.assign(tr.dataset, { status: r.status, sortStatus: r.status, sortProgress: String(r.progress) });
      }
      filterRows();
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
}

initRunsList(pageData("runs-data"));
