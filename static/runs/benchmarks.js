// The run's benchmark results (summary.json's "benchmarks"): each task's metrics on the final
// model and on the best checkpoint, with lm-eval's standard error.

import { $, cell, labelCells } from "../common/dom.js";

const TARGETS = ["final", "best"]; // summary.json's keys, in the order the table shows them
const SKIP = (name) => name === "n" || name.endsWith("_stderr"); // not a score of its own

function fmtScore(values, metric) {
  const x = values ? values[metric] : null;
  if (x === null || x === undefined) return "—";
  const se = values[`${metric}_stderr`];
  return typeof se === "number" ? `${x.toFixed(4)} ± ${se.toFixed(4)}` : x.toFixed(4);
}

// Task -> metric names, over every target's results.
function taskMetrics(bench, targets) {
  const tasks = new Map();
  for (const t of targets) {
    for (const [task, values] of Object.entries(bench[t].results || {})) {
      const names = tasks.get(task) || new Set();
      for (const name of Object.keys(values)) if (!SKIP(name)) names.add(name);
      tasks.set(task, names);
    }
  }
  return tasks;
}

function head(table, bench, targets) {
  table.tHead.innerHTML = "";
  const tr = table.tHead.insertRow();
  const titles = ["Task", "Metric", ...targets.map((t) => `${t} (step ${bench[t].step})`), "Examples"];
  for (const text of titles) {
    const th = document.createElement("th");
    th.textContent = text;
    tr.append(th);
  }
}

export function renderBenchmarks(bench) {
  const table = $("#bench-table");
  const targets = bench ? TARGETS.filter((t) => bench[t]) : [];
  table.hidden = !targets.length;
  $("#bench-empty").hidden = targets.length > 0;
  const errors = $("#bench-errors");
  errors.hidden = !(bench && bench.errors && bench.errors.length);
  errors.textContent = errors.hidden ? "" : bench.errors.join("; ");
  if (!targets.length) return;
  $("#bench-card").hidden = false;
  head(table, bench, targets);
  const body = table.tBodies[0];
  body.textContent = "";
  for (const [task, names] of taskMetrics(bench, targets)) {
    for (const metric of names) {
      const tr = body.insertRow();
      tr.dataset.task = task;
      cell(tr, task);
      cell(tr, metric);
      for (const t of targets) cell(tr, fmtScore((bench[t].results || {})[task], metric), "num");
      cell(tr, String(((bench[targets[0]].results || {})[task] || {}).n ?? "—"), "num");
    }
  }
  labelCells(table);
}
