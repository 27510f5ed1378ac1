/* The Inspect page's plain JSON calls, and the uniform draws select_drops makes (GET /api/draws). */
import { pageFetch } from "../common/csrf.js";
import { state } from "./state.js";

export async function fetchJSON(url, options) {
  const response = await pageFetch(url, options);
  const body = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, body: body,
    retryAfter: Number(response.headers.get("Retry-After")) || 0 };
}

export function detailOf(res) {
  const d = res.body && res.body.detail;
  if (typeof d === "string") return d;
  return d ? JSON.stringify(d) : `request failed (HTTP ${res.status})`;
}

// The uniform draws select_drops makes for n tokens and a seed (cached: they never change).
function draws(n, seed) {
  const key = `${n}:${seed}`;
  if (!state.draws.has(key)) {
    state.draws.set(key, fetchJSON(`/api/draws?n=${n}&seed=${seed}`).then((res) => {
      if (res.ok) return res.body.u;
      state.draws.delete(key);
      throw new Error(detailOf(res));
    }));
  }
  return state.draws.get(key);
}

export async function attachDraws(seed) {
  if (!state.result) return;
  await Promise.all(state.result.panes.map(async (pane) => {
    pane.u = await draws(pane.entropies.length, seed);
  }));
}
