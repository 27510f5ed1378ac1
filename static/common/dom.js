// Shared by the runs pages: DOM and API helpers, and the formatting the Jinja macros also use.
// Each page has its own module (runs_list.js, run_detail.js, run_compare.js, run_new.js) that
// reads the page's JSON data (the same data as its /api twin, facts included) and redraws from the API.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// A form input's value in a config body: null for an empty nullable field, undefined for an
// empty one that is not (left out: the server's default). Used by New run and New study.
export function fieldValue(el) {
  const kind = el.dataset.kind;
  if (kind === "bool") return el.checked;
  if (kind === "select") return el.value;
  const empty = el.value.trim() === "";
  if (kind === "text") return empty && el.dataset.nullable ? null : el.value;
  if (el.validity && el.validity.badInput) return "not a number"; // the server names the field
  if (empty) return el.dataset.nullable ? null : undefined;
  return Number(el.value);
}

// Set obj["a"]["b"] for the form name "a.b", creating the objects on the way.
export function setPath(obj, path, value) {
  const keys = path.split(".");
  let node = obj;
  keys.slice(0, -1).forEach((k) => { node = node[k] = node[k] || {}; });
  node[keys[keys.length - 1]] = value;
}

export function pageData(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

export async function api(method, url, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  let data = null;
  try { data = await res.json(); } catch (e) { data = { detail: res.statusText }; }
  return { ok: res.ok, status: res.status, data };
}

// ---------------------------------------------------------------- formatting (mirrors _runs_macros.html)

export const fmtLoss = (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(4));

export function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// Bytes for a person (mirrors the `size` macro): 0 B, 12 KB, 3.4 MB, 1.2 GB.
export function fmtSize(n) {
  if (n < 1e3) return `${n} B`;
  if (n < 1e6) return `${Math.round(n / 1e3)} KB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(1)} GB`;
}

export function renderBadge(el, r) {
  const badge = el.querySelector(".badge") || el;
  badge.className = `badge status-${r.status}`;
  badge.dataset.status = r.status;
  badge.textContent = r.status + (r.cancel_requested && r.status === "running" ? " (stopping)" : "");
}

export function renderProgress(el, r, eta) {
  const pct = Math.round(r.progress * 1000) / 10;
  const bar = el.querySelector(".bar");
  bar.style.width = `${pct}%`;
  bar.className = `bar status-${r.status}`;
  el.querySelector(".progress").setAttribute("aria-valuenow", String(Math.round(pct)));
  el.querySelector(".steps").textContent = `${r.step}${r.total_steps ? " / " + r.total_steps : ""} steps`;
  const left = eta === undefined ? r.eta_s : eta;
  el.querySelector(".eta").textContent =
    left !== null && left !== undefined ? `· ETA ${fmtDuration(left)}` : r.status === "running" ? "· starting" : "";
}

export function renderRow(tr, r) {
  renderBadge(tr.querySelector(".status-cell"), r);
  renderProgress(tr.querySelector(".progress-cell"), r);
  const best = tr.querySelector(".best");
  if (best) best.textContent = fmtLoss(r.best_eval_loss);
  const fin = tr.querySelector(".final");
  if (fin) fin.textContent = fmtLoss(r.final_eval_loss);
}

export function localTimes() {
  for (const el of $$("[data-time]")) {
    const t = Number(el.dataset.time);
    if (t) el.textContent = new Date(t * 1000).toLocaleString();
  }
}

export function throttled(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fn(); });
  };
}
