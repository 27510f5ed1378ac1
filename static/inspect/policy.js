/* EntroDrop's policy in the browser, mirroring entrodrop/policy.py line for line so the page's
   marks equal select_drops(entropies, config, progress, Generator().manual_seed(seed)).
   torch's RNG cannot run here: the server sends the uniform draws u (GET /api/draws), and
   drops = candidate & (u < r). Comparisons are made in float32, as torch does when a float32
   tensor meets a Python float, hence Math.fround on tau and r. */

// Two branches so Math.exp never overflows, exactly as policy._sigmoid.
export function sigmoid(x) {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const z = Math.exp(x);
  return z / (1 + z);
}

/** Scheduled drop probability r(s) for progress s in [0, 1] (policy.drop_rate). */
export function dropRate(progress, config) {
  const s = Math.min(Math.max(progress, 0), 1);
  let shape;
  if (config.schedule === "constant") shape = 1;
  else if (config.schedule === "linear") shape = s;
  else if (config.schedule === "cosine") shape = 0.5 * (1 - Math.cos(Math.PI * s));
  else shape = sigmoid(config.steepness * (s - config.midpoint));
  return config.rate_max * shape;
}

/** The cut tau (policy.entropy_threshold): the threshold, or the kthvalue q-quantile. */
export function entropyThreshold(entropies, config) {
  if (config.selection === "threshold") return Number(config.threshold);
  const finite = [];
  for (const e of entropies) if (e !== null && Number.isFinite(e)) finite.push(e);
  const n = finite.length;
  if (n === 0) return -Infinity; // nothing has an entropy, so nothing is a candidate
  const k = Math.max(1, Math.min(n, Math.floor(config.quantile * (n - 1)) + 1));
  return Float64Array.from(finite).sort()[k - 1];
}

/** Candidates and drops for token-aligned entropies (null = no prediction) and draws u. */
export function selectDrops(entropies, u, config, progress) {
  const n = entropies.length;
  const tau = Math.fround(entropyThreshold(entropies, config));
  const rate = dropRate(progress, config);
  const rate32 = Math.fround(rate);
  const candidate = new Uint8Array(n);
  const dropped = new Uint8Array(n);
  let nCandidates = 0;
  let nDropped = 0;
  for (let i = 1; i < n; i++) { // position 0 has no entropy and is never dropped
    const e = entropies[i];
    if (e === null || !(e <= tau)) continue;
    candidate[i] = 1;
    nCandidates++;
    if (u[i] < rate32) {
      dropped[i] = 1;
      nDropped++;
    }
  }
  return { tau, rate, candidate, dropped, nCandidates, nDropped };
}

window.EntroPolicy = { sigmoid, dropRate, entropyThreshold, selectDrops }; // for tests and users
