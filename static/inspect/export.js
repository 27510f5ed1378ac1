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
    if (a.conversation) Object.assign(row, { trained: t.trained, role: t.role, segment: t.segment });
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
  // Quoted when it holds a quote, comma or line break, or starts or ends with whitespace.
  return /[",\n\r]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV: header rows (`# key,value`: model, policy, progress), then one row per token with one
    column pair per alternative rank (alt1_text, alt1_prob, ...). Every cell is CSV-quoted as
    needed, so commas, quotes and newlines in token texts survive. */
export function csvText(result, policy) {
  const rows = tokenRows(result);
  const a = result.panes[0];
  const k = Math.max(0, ...rows.map((r) => r.top.length));
  const head = [["model", a.score.model], ["spec", a.score.spec], ["policy", JSON.stringify(policy.config)],
    ["progress", policy.progress], ["tau", a.sel.tau], ["rate", a.sel.rate]];
  if (result.mode === "compare") head.push(["model_b", result.panes[1].score.model]);
  const lines = head.map(([key, v]) => `${csvCell(`# ${key}`)},${csvCell(v)}`);
  const cols = Object.keys(rows[0]).filter((c) => c !== "top");
  const alts = [];
  for (let i = 1; i <= k; i++) alts.push(`alt${i}_text`, `alt${i}_prob`);
  lines.push(cols.concat(alts).map(csvCell).join(","));
  for (const r of rows) {
    const cells = cols.map((c) => r[c]);
    for (let i = 0; i < k; i++) {
      const alt = r.top[i];
      cells.push(alt ? alt.text : null, alt ? alt.prob : null);
    }
    lines.push(cells.map(csvCell).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}

export function exportCsv(result, policy) {
  download("entrodrop-tokens.csv", "text/csv", csvText(result, policy));
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
