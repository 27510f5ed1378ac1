// The page's own requests: pageFetch adds this server's CSRF token (the entrodrop_csrf_<port>
// cookie the server set) as an X-CSRF-Token header to same-origin non-GET requests. Another site
// cannot read the cookie into a header it may send, so the server can tell the dashboard's writes
// from forged ones. Every request a page makes goes through pageFetch (tests/common checks it).

function cookieName() {
  const port = location.port || (location.protocol === "https:" ? "443" : "80");
  return `entrodrop_csrf_${port}`;
}

export function csrfToken() {
  const name = cookieName();
  const hit = document.cookie.split("; ").find((c) => c.startsWith(`${name}=`));
  return hit ? decodeURIComponent(hit.slice(name.length + 1)) : "";
}

/** fetch(), with the CSRF header on this server's writes (reads and other hosts are untouched). */
export function pageFetch(input, init = {}) {
  const request = input instanceof Request ? input : null;
  const method = (init.method || (request && request.method) || "GET").toUpperCase();
  const url = new URL(request ? request.url : String(input), location.href);
  if (method === "GET" || method === "HEAD" || url.origin !== location.origin) {
    return fetch(input, init);
  }
  const headers = new Headers(init.headers || (request && request.headers) || {});
  headers.set("X-CSRF-Token", csrfToken());
  return fetch(input, { ...init, headers });
}
