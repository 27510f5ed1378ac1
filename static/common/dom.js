// DOM helpers every page shares: selectors, the page's embedded data, table cells and links.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// The page's data, rendered once as <script type="application/json" id=...>: the same dict as
// the page's /api twin, facts included.
export function pageData(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

// Run fn at most once per frame, however often it is asked for.
export function throttled(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fn(); });
  };
}

// A table cell holding text (or a node), appended to the row.
export function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (text instanceof Node) td.append(text);
  else td.textContent = text;
  tr.append(td);
  return td;
}

export function link(href, text, code = true) {
  const a = document.createElement("a");
  a.href = href;
  if (code) {
    const c = document.createElement("code");
    c.textContent = text;
    a.append(c);
  } else a.textContent = text;
  return a;
}

// Each body cell's data-label: its column's header (a phone shows it beside the value, see
// style.css .cards-on-phone).
export function labelCells(table) {
  const names = Array.from(table.tHead ? table.tHead.rows[0].cells : [], (th) => th.textContent.trim());
  for (const tr of table.tBodies[0].rows) {
    Array.from(tr.cells).forEach((td, i) => { if (names[i]) td.dataset.label = names[i]; });
  }
}
