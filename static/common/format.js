// Numbers, durations, sizes and times for a person, the same on every page.

import { $$ } from "./dom.js";

export const fmtLoss = (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(4));

export function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// Bytes: 0 B, 12 KB, 3.4 MB, 1.2 GB.
export function fmtSize(n) {
  if (n < 1e3) return `${n} B`;
  if (n < 1e6) return `${Math.round(n / 1e3)} KB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(1)} GB`;
}

// Seconds since the epoch in the reader's own time zone and format.
export const fmtTime = (t) => new Date(t * 1000).toLocaleString();

// Every [data-time] element (seconds since the epoch) in the reader's own time zone and format.
export function localTimes() {
  for (const el of $$("[data-time]")) {
    const t = Number(el.dataset.time);
    if (t) el.textContent = fmtTime(t);
  }
}
