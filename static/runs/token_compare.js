// The compare page's token-level compare: two of its runs (a, b), b − a of each token's loss at
// the last evaluation or at a step both recorded (GET /api/compare/tokens); runs that follow
// different tokens get the API's own reason.

import { api } from "../common/api.js";
import { $, pageData } from "../common/dom.js";
import { DiffView, fillSelect, fillSteps } from "./token_diff.js";

const label = (r) => r.name || `${r.method} ${r.id.slice(-4)}`;

/** The steps of an answer in words: "step 40", or "steps 40 and 36" when they differ. */
function when(steps) {
  const unique = [...new Set(steps)];
  return unique.length === 1 ? `step ${unique[0]}` : `steps ${unique.join(" and ")}`;
}

function initTokenCompare(data) {
  const section = $("#token-compare");
  if (data.runs.length < 2) { section.hidden = true; return; }
  const view = new DiffView(section);
  const runs = Object.fromEntries(data.runs.map((r) => [r.id, r]));
  const items = data.runs.map((r) => [r.id, `${r.name || r.method} · ${r.id}`]);
  fillSelect($("#tc-a"), items, data.runs[0].id);
  fillSelect($("#tc-b"), items, data.runs[1].id);
  let asked = 0;
  async function load() {
    const a = $("#tc-a").value;
    const b = $("#tc-b").value;
    if (a === b) { view.message("Pick two different runs."); return; }
    const query = new URLSearchParams({ runs: `${a},${b}` });
    if ($("#tc-step").value) query.set("step", $("#tc-step").value);
    const mine = ++asked;
    const res = await api("GET", `/api/compare/tokens?${query}`);
    if (mine !== asked) return; // a later choice is on its way
    if (!res.ok) { view.message(res.data.detail); return; }
    const v = res.data;
    fillSteps($("#tc-step"), v.common_steps);
    const names = [label(runs[a]), label(runs[b])];
    view.show({ v, diff: v.diff, loss: [v.loss_a, v.loss_b], names, when: when(v.steps) });
  }
  const pickRuns = () => { $("#tc-step").value = ""; load(); };
  $("#tc-a").addEventListener("change", pickRuns);
  $("#tc-b").addEventListener("change", pickRuns);
  $("#tc-step").addEventListener("change", load);
  $("#tc-swap").addEventListener("click", () => {
    const a = $("#tc-a").value;
    $("#tc-a").value = $("#tc-b").value;
    $("#tc-b").value = a;
    load();
  });
  load();
}

initTokenCompare(pageData("compare-data"));
