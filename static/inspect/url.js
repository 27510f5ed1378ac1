/* The Inspect page's state in its URL, so that a link reopens the same view: text (when short
   enough), model(s), top-k, colour mode and scale, and the policy with its progress s. */

const POLICY_KEYS = ["selection", "quantile", "threshold", "rate_max", "schedule", "steepness",
  "midpoint", "drop_mode", "seed"];

/** The query string for a view; says whether the text fitted (`textIncluded`). */
export function encodeState(view, maxChars) {
  const q = new URLSearchParams();
  const textIncluded = view.text.length <= maxChars;
  if (view.text && textIncluded) q.set("text", view.text);
  if (view.model) q.set("model", view.model);
  if (view.modelB) q.set("model_b", view.modelB);
  q.set("top_k", String(view.topK));
  q.set("colour", view.colour);
  q.set("scale", view.fixed ? "fixed" : "auto");
  for (const key of POLICY_KEYS) {
    const v = view.policy.config[key];
    if (v !== null && v !== undefined) q.set(key, String(v));
  }
  q.set("progress", String(view.policy.progress));
  return { query: q.toString(), textIncluded };
}

/** The view a query string asks for: only the keys present, as strings (the page validates). */
export function decodeState(search) {
  const q = new URLSearchParams(search);
  const pick = (k) => (q.has(k) ? q.get(k) : null);
  const policy = {};
  for (const key of POLICY_KEYS) if (q.has(key)) policy[key] = q.get(key);
  return { text: pick("text"), model: pick("model"), modelB: pick("model_b"), topK: pick("top_k"),
    colour: pick("colour"), scale: pick("scale"), progress: pick("progress"), policy };
}
