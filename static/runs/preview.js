// The new-run form's preview: the first training rows in three layers: tokens that carry no loss
// (prompt, chat template) greyed, trained tokens coloured by the starting model's entropy, and the
// tokens the policy drops at s = 0, 0.5, 1 struck out and framed.

import { $, $$ } from "../common/dom.js";
import { colourClass, installColours, robustTop } from "./token_heat.js";

function tokenTitle(t) {
  const parts = [t.role ? `${t.role} (${t.segment})` : t.segment, t.trained ? "trained" : "not trained"];
  parts.push(t.entropy === null ? "no entropy (first token)" : `entropy ${t.entropy} nats`);
  return parts.join(" · ");
}

function tokenSpan(t, p, selected, top) {
  const span = document.createElement("span");
  span.className = "tok";
  if (!t.trained) span.classList.add("untrained");
  else if (t.entropy !== null) span.classList.add(colourClass(t.entropy, top, false));
  if (t.trained && t.entropy !== null && p.tau !== null && t.entropy <= p.tau) span.classList.add("candidate");
  if (t.dropped[selected]) span.classList.add("dropped");
  span.textContent = t.text;
  span.title = tokenTitle(t);
  return span;
}

function legend(p, top) {
  const el = document.createElement("p");
  el.className = "muted small preview-legend";
  el.innerHTML = '<span class="tok untrained">grey</span> carries no loss (prompt, template) · ' +
    `<span class="tok c2">colour</span> a trained token's entropy, 0 to ${top} nats or more · ` +
    '<span class="tok candidate">dotted</span> low-entropy candidate (≤ τ) · ' +
    '<span class="tok dropped">struck</span> dropped at this s. ';
  el.append(p.note);
  return el;
}

function rowHead(p, i) {
  const ex = p.examples[i];
  if (!p.instruction || !ex) return null;
  const head = document.createElement("div");
  head.className = "muted small preview-example";
  head.textContent = `example ${ex.source === null ? i + 1 : ex.source + 1}${ex.truncated ? " (truncated)" : ""}`;
  return head;
}

export function renderPreview(p) {
  installColours();
  const tabs = $("#preview-points");
  const box = $("#preview");
  box.classList.add("tokens"); // the colour bins' scope (token_heat.js)
  tabs.textContent = "";
  const top = robustTop(p.rows.map((row) => row.filter((t) => t.trained).map((t) => t.entropy ?? NaN)));
  let selected = p.points.length - 1;
  function draw() {
    for (const [i, t] of $$("button", tabs).entries()) t.setAttribute("aria-selected", String(i === selected));
    box.textContent = "";
    if (!p.drops_apply) {
      const note = document.createElement("p");
      note.className = "muted";
      note.textContent = `The ${p.method} method drops no tokens; the batch trains as is.`;
      box.appendChild(note);
    }
    p.rows.forEach((row, i) => {
      const div = document.createElement("div");
      div.className = "preview-row";
      const head = rowHead(p, i);
      if (head) div.appendChild(head);
      for (const t of row) div.appendChild(tokenSpan(t, p, selected, top));
      box.appendChild(div);
    });
    box.appendChild(legend(p, top));
  }
  p.points.forEach((pt, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tab";
    b.setAttribute("role", "tab");
    b.dataset.progress = String(pt.progress);
    b.textContent = `s = ${pt.progress}: r = ${pt.rate.toFixed(3)}, ${pt.n_dropped} of ${p.n_trained} trained dropped`;
    b.addEventListener("click", () => { selected = i; draw(); });
    tabs.appendChild(b);
  });
  draw();
}
