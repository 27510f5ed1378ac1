// Shared by the studies pages: formatting of a mean ± 95% CI.
// Words and labels come from the page's facts (app.studies.views.study_facts), never retyped here.

export function fmtNum(x, digits = 3) {
  if (x === null || x === undefined) return "—";
  const s = Math.abs(x).toFixed(digits);
  if (x < 0 && Number(s) !== 0) return "\u2212" + s;
  return s;
}

// "3.142 ± 0.021", or "3.142 (n < 2: no interval)", or "—" without a value; the server's word on
// why some runs have none (stat.why: e.g. too short to rebound) follows.
export function fmtStat(stat, facts, signed = false) {
  const why = stat && stat.why ? ` (${stat.why})` : "";
  if (!stat || stat.mean === null || stat.mean === undefined) return "—" + why;
  let mean = fmtNum(stat.mean);
  if (signed && stat.mean > 0 && Number(Math.abs(stat.mean).toFixed(3)) !== 0) mean = "+" + mean;
  if (stat.ci95 === null || stat.ci95 === undefined) return `${mean} (${facts.no_interval})${why}`;
  return `${mean} ± ${stat.ci95.toFixed(3)}${why}`;
}
