// The run page's export: a checkpoint choice (what exists), LoRA merge, the zip download from
// links.export and the same export's CLI line, all from the run's JSON.

import { $ } from "../common/dom.js";

function optionText(which, r) {
  if (which === "final") return "final model";
  if (which === "best") return r.best_step === null ? "best checkpoint" : `best (step ${r.best_step})`;
  return `step ${which}`;
}

function sync(r) {
  const which = $("#export-checkpoint").value;
  const merge = r.export.merge && $("#export-merge").checked;
  const query = new URLSearchParams({ checkpoint: which });
  if (merge) query.set("merge", "true");
  if (r.links.export) $("#export-download").href = `${r.links.export}?${query}`;
  const key = merge ? `${which}:merge` : which;
  $("#export-command").textContent = r.export.commands[key] || r.export.command;
}

// Fill (or refill, once the run has ended) the export card from a run's detail.
export function renderExport(r) {
  const card = $("#export-card");
  card.hidden = !r.links.export || !r.export.checkpoints.length;
  if (card.hidden) return;
  const select = $("#export-checkpoint");
  const before = select.value;
  select.textContent = "";
  for (const which of r.export.checkpoints) {
    const opt = document.createElement("option");
    opt.value = which;
    opt.textContent = optionText(which, r);
    select.append(opt);
  }
  if (r.export.checkpoints.includes(before)) select.value = before;
  $("#export-folder").textContent = r.export.folder;
  $("#export-merge-label").hidden = !r.export.merge;
  select.onchange = () => sync(r);
  $("#export-merge").onchange = () => sync(r);
  sync(r);
}

export function initExport() {
  $("#export-copy").addEventListener("click", () => {
    if (navigator.clipboard) navigator.clipboard.writeText($("#export-command").textContent);
  });
}
