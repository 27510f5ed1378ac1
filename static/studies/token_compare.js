// The study page's token-level compare: two variants, b − a of each token's loss per seed, then
// the mean over seeds, with the tokens that differ the same way in every seed marked
// (GET /api/studies/{id}/tokens). Read again when more of the study's runs have succeeded.

import { api } from "../common/api.js";
import { $, pageData } from "../common/dom.js";
import { DiffView, fillSelect, fillSteps } from "../runs/token_diff.js";

// The steps of the seeds' runs in words: one step when every run shows the same one.
function when(steps) {
  const all = new Set(steps.flatMap((s) => [s.a, s.b]));
  return all.size === 1 ? `step ${[...all][0]}` : "each run's last evaluation";
}

function initStudyTokens(data) {
  const section = $("#study-tokens");
  if (data.variants.length < 2) { section.hidden = true; return; }
  const view = new DiffView(section);
  const items = data.variants.map((v) => [v, v]);
  fillSelect($("#st-a"), items, null);
  fillSelect($("#st-b"), items, null);
  let asked = 0;
  let chosen = false; // until the reader picks, the API's defaults (none, then the next)
  async function load() {
    const query = new URLSearchParams();
    if (chosen) { query.set("a", $("#st-a").value); query.set("b", $("#st-b").value); }
    if ($("#st-step").value) query.set("step", $("#st-step").value);
    const mine = ++asked;
    const res = await api("GET", `${data.links.tokens}?${query}`);
    if (mine !== asked) return;
    if (!res.ok) { view.message(res.data.detail); return; }
    const v = res.data;
    $("#st-a").value = v.variants[0];
    $("#st-b").value = v.variants[1];
    fillSteps($("#st-step"), v.common_steps);
    view.show({ v, diff: v.mean_diff, consistent: v.consistent, n_seeds: v.seeds.length, names: v.variants,
      when: when(v.steps) });
    const skipped = section.querySelector(".tok-skipped");
    skipped.hidden = !v.skipped.length;
    skipped.textContent = v.skipped.map((s) => `Seed ${s.seed} left out: ${s.reason}`).join(" ");
  }
  const pick = () => { chosen = true; $("#st-step").value = ""; load(); };
  $("#st-a").addEventListener("change", pick);
  $("#st-b").addEventListener("change", pick);
  $("#st-step").addEventListener("change", () => { chosen = true; load(); });
  $("#st-swap").addEventListener("click", () => {
    const a = $("#st-a").value;
    $("#st-a").value = $("#st-b").value;
    $("#st-b").value = a;
    pick();
  });
  let succeeded = data.counts.succeeded || 0;
  document.addEventListener("study:data", (e) => {
    const now = e.detail.counts.succeeded || 0;
    if (now !== succeeded) { succeeded = now; load(); }
  });
  load();
}

initStudyTokens(pageData("study-data"));
