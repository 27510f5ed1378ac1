/* The Inspect page's starting data (the same dict as GET /api/inspect, embedded in the page) and
   its live state, shared by the page's modules. */

export const $ = (id) => document.getElementById(id);
export const DATA = JSON.parse($("inspect-data").textContent);
export const MODES = new Map(DATA.colour_modes.map((m) => [m.id, m]));

// Everything the page knows; `timings` is read by the benchmark and the tests.
export const state = {
  result: null, // {mode, panes: [{score, label, entropies, u, spans, marks, sel}], sameTokens, note, delta}
  view: "side", // compare mode: "side" (two panes) or "delta" (one pane coloured by B - A)
  draws: new Map(), // "n:seed" -> Promise<number[]>
  scale: null,
  colour: { mode: "entropy", fixed: false },
  job: null, // {controller, t0} while a scoring request runs
  urlTimer: null,
  dropMode: null,
  retryTimer: null,
  chartsPending: false,
  renderCount: 0,
  timings: {},
};

export function setStatus(message, kind) {
  $("score-status").textContent = message;
  $("score-status").dataset.kind = kind || "";
}
