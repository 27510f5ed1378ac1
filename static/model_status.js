/* The header's model badge on every page: polls GET /api/health until the model has loaded. */
(function () {
  "use strict";
  const badge = document.getElementById("model-status");
  if (!badge) return;

  function show(state, text) {
    badge.dataset.state = state;
    badge.textContent = text;
  }

  async function poll() {
    let health = null;
    try {
      const res = await fetch("/api/health");
      health = res.ok ? await res.json() : null;
    } catch (_) {
      health = null;
    }
    if (!health) {
      show("unknown", "server unreachable");
    } else if (health.model_loaded) {
      show("ready", `model: ${health.model}`);
      return; // loaded models stay loaded: no need to keep polling
    } else if (health.state === "error") {
      show("error", "model failed to load");
      badge.title = health.error || "";
      return;
    } else {
      show("loading", `loading model ${health.spec}…`);
    }
    setTimeout(poll, 1500);
  }

  poll();
})();
