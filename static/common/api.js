// JSON calls to this server's API, through pageFetch (writes carry the CSRF token).

import { pageFetch } from "./csrf.js";

/** {ok, status, data}: data is the JSON body, or {detail} when the body is not JSON. */
export async function api(method, url, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await pageFetch(url, init);
  let data = null;
  try { data = await res.json(); } catch (e) { data = { detail: res.statusText }; }
  return { ok: res.ok, status: res.status, data };
}
