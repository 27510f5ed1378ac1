/* POST a scoring request that streams NDJSON progress events (?stream=1), then its result.
   Aborting the signal closes the connection; the server then cancels the job. */
import { pageFetch } from "../common/csrf.js";

function fail(status, detail, retryAfter) {
  return { ok: false, status, body: { detail }, retryAfter: retryAfter || 0 };
}

/** Resolves to {ok, status, body, retryAfter} like a plain JSON call; `onEvent(event)` sees every
    queued / started / progress event on the way. Rejects with an AbortError when aborted. */
export async function streamScore(url, body, { signal, onEvent }) {
  const response = await pageFetch(`${url}?stream=1`, {
    method: "POST", signal,
    headers: { "Content-Type": "application/json", Accept: "application/x-ndjson" },
    body: JSON.stringify(body),
  });
  if (!response.ok) { // refused before the job started: an ordinary JSON error
    const err = await response.json().catch(() => null);
    const detail = err && typeof err.detail === "string" ? err.detail : `request failed (HTTP ${response.status})`;
    return fail(response.status, detail, Number(response.headers.get("Retry-After")));
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const event = JSON.parse(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
      if (event.event === "result") return { ok: true, status: 200, body: event.result, retryAfter: 0 };
      if (event.event === "error") return fail(event.status, event.detail);
      onEvent(event);
    }
  }
  return fail(0, "the server closed the stream before the result");
}
