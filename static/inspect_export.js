/* Export the token table of the Inspect page as CSV or JSON (built in the page, downloaded). */

function download(name, type, content) {
  const url = URL.createObjectURL(new Blob([content], { type: type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** One row per token of pane A with its marks; B's entropy and the difference when defined. */
export function tokenRows(result) {
  const a = result.panes[0];
  const b = result.delta ? result.panes[1] : null;
  return a.score.tokens.map((t, i) => {
    const row = { index: t.index, id: t.id, text: t.text, entropy: t.entropy, surprisal: t.surprisal,
      prob: t.prob, rank: t.rank, candidate: Boolean(a.sel.candidate[i]),
      dropped: Boolean(a.sel.dropped[i]), top: t.top };
    if (b) {
      row.entropy_b = b.entropies[i];
      row.delta = result.delta[i];
      row.dropped_b = Boolean(b.sel.dropped[i]);
    }
    return row;
  });
}

function csvCell(v) {
  if (v === null || v === undefined) return "";
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function exportCsv(result) {
  const rows = tokenRows(result);
  const cols = Object.keys(rows[0]).filter((k) => k !== "top");
  const lines = [cols.concat(["top"]).join(",")];
  for (const r of rows) {
    const top = r.top.map((alt) => `${alt.text}:${alt.prob === null ? "" : alt.prob.toPrecision(4)}`);
    lines.push(cols.map((c) => csvCell(r[c])).concat([csvCell(top.join(" | "))]).join(","));
  }
  download("entrodrop-tokens.csv", "text/csv", lines.join("\r\n") + "\r\n");
}

export function exportJson(result, policy) {
  const a = result.panes[0];
  const doc = { model: a.score.model, spec: a.score.spec, policy: policy.config,
    progress: policy.progress, tau: a.sel.tau, rate: a.sel.rate, summary: a.score.summary,
    tokens: tokenRows(result) };
  if (result.mode === "compare") {
    const b = result.panes[1];
    Object.assign(doc, { model_b: b.score.model, spec_b: b.score.spec,
      same_tokens: result.sameTokens, note: result.note });
  }
  download("entrodrop-tokens.json", "application/json", JSON.stringify(doc, null, 1));
}
