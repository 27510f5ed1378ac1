/* The view in the address bar and in a link to copy, so that a link reopens it (inspect/url.js
   encodes it). */
import { modelSpec, readPolicy } from "./controls.js";
import { encodeState } from "./url.js";
import { $, DATA, state } from "./state.js";

function currentView() {
  return { text: $("text").value, model: modelSpec("model", "model-folder"),
    modelB: $("compare-on").checked ? modelSpec("model-b", "model-b-folder") : null,
    topK: Number($("top-k").value) || 0, colour: state.colour.mode, fixed: state.colour.fixed,
    policy: readPolicy() };
}

// The address bar follows the view (replaceState: no history entry per slider move).
export function saveUrl() {
  clearTimeout(state.urlTimer);
  state.urlTimer = setTimeout(() => {
    const { query } = encodeState(currentView(), DATA.limits.url_text_chars);
    history.replaceState(null, "", `${location.pathname}?${query}`);
  }, 200);
}

export async function copyLink() {
  const view = currentView();
  const { query, textIncluded } = encodeState(view, DATA.limits.url_text_chars);
  const link = `${location.origin}${location.pathname}?${query}`;
  history.replaceState(null, "", `${location.pathname}?${query}`);
  $("share-link").value = link;
  $("share-link").hidden = false;
  $("share-link").select();
  try {
    await navigator.clipboard.writeText(link);
  } catch (err) { /* no clipboard without a secure context: the link is selected to copy */ }
  $("share-note").textContent = textIncluded ? "Link copied: it reopens this text, model, policy and colours."
    : `Link copied without the text: it has ${view.text.length.toLocaleString()} characters, over the ` +
      `${DATA.limits.url_text_chars.toLocaleString()} a link carries (paste it again after opening).`;
}
