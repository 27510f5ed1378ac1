// The studies list: one row per study, live while any is queued or running.

import { api } from "../common/api.js";
import { statusBadge } from "../common/badges.js";
import { $, cell, link, pageData } from "../common/dom.js";

function render(d) {
  const rows = d.studies.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.studyId = s.id;
    const name = cell(tr, link(s.links.page, s.name, false));
    name.append(" ", Object.assign(document.createElement("code"), { className: "small muted", textContent: s.id }));
    cell(tr, statusBadge(s.status, d.facts), "status-cell");
    cell(tr, s.variants.join(", "), "small");
    cell(tr, String(s.seeds.length), "num");
    cell(tr, Object.entries(s.counts).map(([st, n]) => `${n} ${st}`).join(", "), "small");
    cell(tr, s.created_at ? new Date(s.created_at * 1000).toLocaleString() : "", "small");
    return tr;
  });
  $("#studies-table").tBodies[0].replaceChildren(...rows);
  $("#studies-empty").hidden = d.studies.length > 0;
}

function init(data) {
  render(data);
  let current = data;
  async function poll() {
    if (!current.studies.some((s) => current.facts.active.includes(s.status))) return;
    const res = await api("GET", "/api/studies");
    if (res.ok) { current = res.data; render(current); }
    setTimeout(poll, 3000);
  }
  setTimeout(poll, 3000);
}

init(pageData("studies-data"));
