// Adds this server's CSRF token (the entrodrop_csrf_<port> cookie the server set) as an
// X-CSRF-Token header to the page's own non-GET fetches. Another site cannot read the cookie
// into a header it may send, so the server can tell the dashboard's writes from forged ones.
(() => {
  const port = location.port || (location.protocol === "https:" ? "443" : "80");
  const name = `entrodrop_csrf_${port}`;
  const token = () => {
    const hit = document.cookie.split("; ").find((c) => c.startsWith(`${name}=`));
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : "";
  };
  const original = window.fetch.bind(window);
  window.fetch = (input, init = {}) => {
    const request = input instanceof Request ? input : null;
    const method = (init.method || (request && request.method) || "GET").toUpperCase();
    const url = new URL(request ? request.url : String(input), location.href);
    if (method === "GET" || method === "HEAD" || url.origin !== location.origin) {
      return original(input, init);
    }
    const headers = new Headers(init.headers || (request && request.headers) || {});
    headers.set("X-CSRF-Token", token());
    return original(input, { ...init, headers });
  };
})();
