/* Scoring a text: the request (one model, or two to compare), its progress and cancel, the
   result turned into panes; and the token count and time estimate before scoring. */
import { modelSpec, readPolicy } from "./controls.js";
import { conversationSource, showConversation } from "./conversation.js";
import { modelLabel } from "./names.js";
import { renderResult } from "./render.js";
import { attachDraws, detailOf, fetchJSON } from "./requests.js";
import { saveUrl } from "./share.js";
import { $, DATA, setStatus, state } from "./state.js";
import { streamScore } from "./stream.js";

// A conversation's tokens outside the drop scope (prompt and template, with the default scope
// 'trained') get no entropy here, as policy.in_scope gives them NaN: never candidates, and not in τ.
function scopedEntropies(score) {
  const all = DATA.policy_defaults.drop_scope === "all";
  return score.tokens.map((t) => (t.trained === false && !all ? null : t.entropy));
}

function makePane(score, label) {
  return { score, label, entropies: scopedEntropies(score), u: null, spans: null,
    baseClass: null, marks: null, sel: null, conversation: score.conversation || null };
}

function toResult(body, compare) {
  if (!compare) {
    return { mode: "single", panes: [makePane(body, modelLabel(body))], sameTokens: false, note: null,
      delta: null, deltaSummary: null };
  }
  return { mode: "compare", panes: [makePane(body.a, `A: ${modelLabel(body.a)}`), makePane(body.b, `B: ${modelLabel(body.b)}`)],
    sameTokens: body.same_tokens, note: body.note, delta: body.delta, deltaSummary: body.delta_summary };
}

export function inputMode() {
  return document.querySelector(".inspect").dataset.mode;
}

function requestBody() {
  const text = $("text").value;
  const topK = Number($("top-k").value) || 0;
  const specA = modelSpec("model", "model-folder");
  if (inputMode() === "conversation") { // one model: /api/compare takes texts only
    const { problem, ...source } = conversationSource();
    return { url: "/api/score", body: { ...source, model: specA, top_k: topK }, problem };
  }
  if (!$("compare-on").checked) return { url: "/api/score", body: { text, model: specA, top_k: topK } };
  const specB = modelSpec("model-b", "model-b-folder") || DATA.model.spec;
  return { url: "/api/compare", body: { text, model_a: specA, model_b: specB, top_k: topK } };
}

function secs(s) {
  return s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;
}

// Progress events: a bar of tokens done / total and the ETA the server computes.
function showProgress(event) {
  const bar = $("score-progress");
  if (event.event === "queued" && event.ahead > 0) {
    state.job.queued = true; // the result then says its wait, however short
    setStatus(`Waiting: ${event.ahead} scoring job${event.ahead > 1 ? "s" : ""} ahead…`, "busy");
  } else if (event.event === "started") {
    setStatus("Loading the model and tokenizing…", "busy");
  } else if (event.event === "progress") {
    bar.hidden = false;
    bar.max = Math.max(1, event.total);
    bar.value = event.done;
    const who = event.stage ? `model ${event.stage}: ` : "";
    const eta = event.eta_s === null ? "" : ` · about ${secs(event.eta_s)} left`;
    setStatus(`Scoring ${who}${event.done.toLocaleString()} / ${event.total.toLocaleString()} tokens${eta}`, "busy");
  }
}

function startJob(controller) {
  state.job = { controller };
  $("score-btn").disabled = true;
  $("cancel-btn").hidden = false;
  setStatus("Scoring…", "busy");
}

function endJob() {
  state.job = null;
  $("score-btn").disabled = false;
  $("cancel-btn").hidden = true;
  $("score-progress").hidden = true;
}

export function cancelScore() {
  if (!state.job) return;
  state.job.controller.abort(); // closes the connection: the server drops the job
}

export async function score() {
  clearTimeout(state.retryTimer);
  if (state.job) return;
  const { url, body, problem } = requestBody();
  const why = inputMode() === "conversation" ? problem : textProblem($("text").value);
  if (why) {
    setStatus(why, "error");
    return;
  }
  const controller = new AbortController();
  startJob(controller);
  const t0 = performance.now();
  let res;
  try {
    res = await streamScore(url, body, { signal: controller.signal, onEvent: showProgress });
  } catch (err) {
    endJob();
    if (err.name === "AbortError") setStatus("Cancelled: the server stopped scoring this text.", "error");
    else setStatus(`the server did not answer (${err})`, "error");
    return;
  }
  const queued = state.job.queued;
  endJob();
  if (res.status === 503 && res.retryAfter) { // model loading or queue full: try again by itself
    setStatus(`${res.body.detail} (retrying in ${res.retryAfter} s)`, "busy");
    state.retryTimer = setTimeout(score, res.retryAfter * 1000);
    return;
  }
  if (!res.ok) {
    setStatus(res.body.detail, "error");
    return;
  }
  await showScored(res.body, url === "/api/compare", t0, queued);
}

// A scored text on screen, with its draws for the current seed; timings for the benchmark.
async function showScored(body, compare, t0, queued) {
  const t1 = performance.now();
  state.result = toResult(body, compare);
  try {
    await attachDraws(readPolicy().config.seed ?? DATA.policy_defaults.seed);
  } catch (err) {
    setStatus(String(err.message || err), "error");
    return;
  }
  renderResult();
  const t2 = performance.now();
  state.timings = { ...state.timings, scoreMs: t1 - t0, renderMs: t2 - t1, totalMs: t2 - t0 };
  const n = state.result.panes[0].score.n_tokens;
  setStatus(`Scored ${n} tokens ${serverTime(body, queued)}; drawn in ${Math.round(t2 - t1)} ms.`, "ok");
  showConversation(body.conversation);
  estimate();
  saveUrl();
}

// The server's own clock: the scoring time, and the queue wait apart when there was one.
function serverTime(body, queued) {
  const w = body.waited_s || 0;
  const waited = queued || w >= 0.05 ? ` (waited ${w.toFixed(w < 0.1 ? 2 : 1)} s)` : "";
  return `in ${body.elapsed_s.toFixed(2)} s${waited}`;
}

// What the API would refuse, said before sending (the API says the same with a 422).
export function textProblem(text) {
  if (!text) return "Paste, upload or pick some text first.";
  if (!text.trim()) return "The text is only whitespace: there is nothing to score.";
  if (text.includes("\u0000")) return "The text looks like binary data (NUL bytes), not text.";
  return null;
}

// Before scoring: the token count and how long it should take here (the measured rate).
export async function estimate() {
  const text = $("text").value;
  const problem = textProblem(text);
  const info = $("text-info");
  if (problem) {
    info.textContent = text ? problem : `Up to ${DATA.limits.max_score_tokens} tokens.`;
    info.dataset.kind = text ? "error" : "";
    return;
  }
  const model = modelSpec("model", "model-folder");
  const res = await fetchJSON("/api/estimate", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text, model }) }).catch(() => null);
  if (!res || $("text").value !== text) return; // the text changed meanwhile: a newer call follows
  if (!res.ok) {
    info.textContent = detailOf(res);
    info.dataset.kind = "error";
    return;
  }
  const e = res.body;
  const count = e.n_tokens === null ? "Token count once the model is loaded" : `${e.n_tokens.toLocaleString()} tokens`;
  const time = e.eta_s !== null ? ` · about ${secs(e.eta_s)} to score here (${Math.round(e.tokens_per_s)} tokens/s measured)`
    : " · no measurement of this model's speed yet";
  const over = e.n_tokens !== null && e.n_tokens > e.limit ? ` · over the limit of ${e.limit}` : "";
  info.textContent = count + time + over;
  info.dataset.kind = over ? "error" : "";
}
