/* What a checkpoint is called on the page: a finished run by its name (the runs table's, from
   the page's data), a folder by its last part, the server's model by the name it loaded under. */
import { DATA } from "./state.js";

/** A finished run's name for its spec (run:<id>), or null for any other spec. */
export function runName(spec) {
  const run = DATA.checkpoints.find((c) => c.spec === spec);
  return run ? run.name : null;
}

/** A short name for the model a score came from (`score.spec`, `score.model`). */
export function modelLabel(score) {
  const name = runName(score.spec);
  if (name) return name;
  if (score.spec === DATA.model.spec) return score.model;
  const parts = String(score.spec).split(/[\\/]/).filter(Boolean);
  return parts.length > 1 ? parts[parts.length - 1] : score.model || score.spec;
}
