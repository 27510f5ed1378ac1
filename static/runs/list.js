// The runs list: sort by any column, filter by status, method, tag and text, pick runs to compare,
// live rows while any run is active.

import { api } from "../common/api.js";
import { showBadge } from "../common/badges.js";
import { $, $$, pageData } from "../common/dom.js";
import { localTimes } from "../common/format.js";
import { renderRow } from "./rows.js";

const NUMERIC = new Set(["progress", "best", "final", "disk", "started"]);

// The "Compare selected" button follows the ticked rows (2 to max_compare of them).
function initPicks(data) {
  const picks = () => $$(".pick:checked").map((c) => c.value);
  const button = $("#compare-selected");
  const pickChanged = () => {
    const n = picks().length;
    button.disabled = n < 2 || n > data.max_compare;
    button.textContent = n > data.max_compare ? `Compare at most ${data.max_compare}` : n >= 2 ? `Compare ${n} runs` : "Compare selected";
  };
  for (const c of $$(".pick")) c.addEventListener("change", pickChanged);
  button.addEventListener("click", () => { location.href = `/compare?runs=${picks().join(",")}`; });
}

// Column headers sort the rows by their data-sort-* values (empty last, either way).
function initSorting(tbody) {
  let sortKey = "started", descending = true;
  function sortRows() {
    const rows = $$("tr[data-run-id]", tbody);
    const key = `sort${sortKey[0].toUpperCase()}${sortKey.slice(1)}`;
    const value = (tr) => tr.dataset[key] ?? "";
    rows.sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      if (x === "" || y === "") return x === y ? 0 : x === "" ? 1 : -1;
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
}

// Hide the rows the filters leave out; says how many are shown.
function filterRows(tbody, total) {
  const text = $("#filter-text").value.trim().toLowerCase();
  const status = $("#filter-status").value, method = $("#filter-method").value, tag = $("#filter-tag").value;
  let shown = 0;
  for (const tr of $$("tr[data-run-id]", tbody)) {
    const ok = (!status || tr.dataset.status === status) && (!method || tr.dataset.method === method)
      && (!tag || tr.dataset.tags.split(" ").includes(tag)) && (!text || tr.dataset.text.includes(text));
    tr.hidden = !ok;
    shown += ok ? 1 : 0;
  }
  $("#shown-count").textContent = `${shown} of ${total} runs`;
}

function initFilters(tbody, total) {
  const filter = () => filterRows(tbody, total);
  for (const id of ["#filter-text", "#filter-status", "#filter-method", "#filter-tag"]) $(id).addEventListener("input", filter);
  $("#filters").addEventListener("submit", (e) => e.preventDefault());
  filter();
}

// While a run is active: its row follows the API every 2 s; a run added or removed reloads the page.
function pollRows(data, tbody) {
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
        renderRow(tr, r, data.facts);
        Object.assign(tr.dataset, { status: r.status, sortStatus: r.status, sortProgress: String(r.progress) });
      }
      filterRows(tbody, data.runs.length);
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
}

function initRunsList(data) {
  for (const r of data.runs) showBadge($(`tr[data-run-id="${CSS.escape(r.id)}"] .status-cell`), r, data.facts);
  localTimes();
  initPicks(data);
  const tbody = $("#runs-table tbody");
  if (tbody) {
    initSorting(tbody);
    initFilters(tbody, data.runs.length);
  }
  pollRows(data, tbody);
}

initRunsList(pageData("runs-data"));
