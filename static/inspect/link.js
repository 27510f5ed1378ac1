/* What a link to the Inspect page may do by itself. A link restores a view; it never performs
   work its reader did not ask for: only a text short enough for a shared link, on the server's
   own model (already loaded, or loading anyway), is scored at once. A link naming another
   checkpoint, a second model to compare with, or a longer text fills in the form and waits for
   a click: another page can navigate the browser here, and a model named in a link would
   otherwise be loaded (or downloaded) on its say-so. */
import { runName } from "./names.js";
import { DATA } from "./state.js";

function modelName(spec) {
  if (!spec) return `the server's model ${DATA.model.spec}`;
  const name = runName(spec);
  return name ? `the run ${name} (${spec})` : `the checkpoint ${spec}`;
}

/** {scoreNow, note}: whether the link's text is scored on opening, and what the page says. */
export function linkRequest(view) {
  const own = !view.model || view.model === DATA.model.spec;
  const chars = view.text === null ? 0 : view.text.length;
  if (view.text === null) {
    if (!view.model && !view.modelB) return { scoreNow: false, note: "" };
    const b = view.modelB ? ` and compare it with ${modelName(view.modelB)}` : "";
    return { scoreNow: false,
      note: `This link picks ${modelName(view.model)}${b}. Nothing is loaded until you press Score.` };
  }
  const what = `its text (${chars.toLocaleString()} characters)`;
  if (own && !view.modelB && chars <= DATA.limits.url_text_chars) {
    return { scoreNow: true, note: `Opened from a link: ${what} is scored with ${modelName(null)}.` };
  }
  const b = view.modelB ? `, compared with ${modelName(view.modelB)}` : "";
  return { scoreNow: false,
    note: `This link asks to score ${what} with ${modelName(own ? null : view.model)}${b}. ` +
      "Nothing has been loaded or scored: press Score to do it." };
}
