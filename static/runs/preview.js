// The new-run form's preview: the first training blocks with the tokens dropped at s = 0, 0.5, 1.

import { $, $$ } from "../common/dom.js";

export function renderPreview(p) {
  const tabs = $("#preview-points");
  const box = $("#preview");
  tabs.textContent = "";
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
    for (const row of p.rows) {
      const div = document.createElement("div");
      div.className = "preview-row";
      for (const t of row) {
        const span = document.createElement("span");
        span.className = "tok";
        if (t.entropy !== null && p.tau !== null && t.entropy <= p.tau) span.classList.add("candidate");
        if (t.dropped[selected]) span.classList.add("dropped");
        span.textContent = t.text;
        span.title = t.entropy === null ? "first token: no entropy" : `entropy ${t.entropy} nats`;
        div.appendChild(span);
      }
      box.appendChild(div);
    }
    const legend = document.createElement("p");
    legend.className = "muted small";
    legend.innerHTML = '<span class="tok candidate">candidate</span> low-entropy (≤ τ) · <span class="tok dropped">dropped</span> at this s. ' + p.note;
    box.appendChild(legend);
  }
  p.points.forEach((pt, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tab";
    b.setAttribute("role", "tab");
    b.dataset.progress = String(pt.progress);
    b.textContent = `s = ${pt.progress}: r = ${pt.rate.toFixed(3)}, ${pt.n_dropped} of ${p.n_tokens} dropped`;
    b.addEventListener("click", () => { selected = i; draw(); });
    tabs.appendChild(b);
  });
  draw();
}
