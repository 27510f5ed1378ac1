/* The token view's colours: a perceptual scale per mode (entropy, surprisal, probability), GLTR's
   rank buckets, the difference scale of the compare view; one CSS class per colour bin. */

export const N_BINS = 32;
export const VIRIDIS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884",
  "#44bf70", "#7ad151", "#bddf26", "#fde725"];
export const DIVERGING = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582",
  "#d6604d", "#b2182b"];
// GLTR's rank buckets: top-10 green, top-100 yellow, top-1000 orange (GLTR's red would read as
// the red frame of a dropped token), beyond purple.
const GLTR = ["#6fdc8c", "#f5e663", "#ffb347", "#c9a0ff"];
const TINT = 0.45; // share of white mixed into token backgrounds

function hexToRgb(hex) {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

function interpolate(stops, t) {
  const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const a = hexToRgb(stops[i]);
  const b = hexToRgb(stops[i + 1]);
  return a.map((c, k) => Math.round(c + (b[k] - c) * (x - i)));
}

function luminance(rgb) {
  const lin = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.04045) / 1.055, 2.4);
  });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
}

// Backgrounds are the scale mixed with white: lightness stays monotone (still a perceptual
// scale) while dark text and the red drop marks stay readable on every bin.
function tint(stops, t) {
  return interpolate(stops, t).map((c) => Math.round(c + (255 - c) * TINT));
}

/** One CSS class per colour bin (c0.. entropy, d0.. difference): spans get a class, not a style. */
export function installColourClasses() {
  const rules = [];
  const add = (prefix, stops) => {
    for (let b = 0; b < N_BINS; b++) {
      const rgb = tint(stops, b / (N_BINS - 1));
      const fg = luminance(rgb) > 0.18 ? "#111" : "#fff";
      rules.push(`.tokens .${prefix}${b}{background:rgb(${rgb.join(",")});color:${fg}}`);
    }
  };
  add("c", VIRIDIS);
  add("d", DIVERGING);
  GLTR.forEach((hex, b) => {
    rules.push(`.tokens .r${b}, .legend .tok.sample.r${b}{background:${hex};color:#111}`);
  });
  const style = document.createElement("style");
  style.textContent = rules.join("\n");
  document.head.appendChild(style);
}

export function gradientCss(stops) {
  const parts = [];
  for (let i = 0; i <= 10; i++) parts.push(`rgb(${tint(stops, i / 10).join(",")})`);
  return `linear-gradient(to right, ${parts.join(", ")})`;
}

/** What a token is coloured by in each mode; probability is turned over (1 − p) so that, as with
    entropy, dark means predictable. Rank gives a bucket index (see rankBucket). */
export function colourValue(tok, mode) {
  if (mode === "surprisal") return tok.surprisal;
  if (mode === "prob") return tok.prob === null ? null : 1 - tok.prob;
  return tok.entropy;
}

export function rankBucket(rank, buckets) {
  if (rank === null) return null;
  const b = buckets.findIndex((top) => rank <= top);
  return b === -1 ? buckets.length : b;
}

/** The colour domains: 0..top for the mode (auto: this text's maximum; fixed: the mode's
    fixed_max, the same for every text), and ±max |difference| for the compare view. */
export function computeScale(result, colour) {
  const mode = colour.mode;
  let top = 1;
  if (mode === "entropy" || mode === "surprisal") {
    if (colour.fixed) {
      top = colour.fixedMax;
    } else {
      let hmax = 0;
      for (const pane of result.panes) {
        for (const t of pane.score.tokens) {
          const v = colourValue(t, mode);
          if (v !== null && v > hmax) hmax = v;
        }
      }
      top = Math.max(0.5, Math.ceil(hmax * 2) / 2);
    }
  }
  let dmax = 0;
  for (const d of result.delta || []) if (d !== null && Math.abs(d) > dmax) dmax = Math.abs(d);
  return { mode, top, buckets: colour.buckets, unit: colour.unit, dmax: Math.max(0.1, dmax) };
}

function bin(value, lo, hi) {
  if (value === null) return null;
  const t = (value - lo) / (hi - lo);
  return Math.min(N_BINS - 1, Math.max(0, Math.round(t * (N_BINS - 1))));
}

export function colourClass(tok, i, opts) {
  if (opts.delta) {
    const b = bin(opts.delta[i], -opts.scale.dmax, opts.scale.dmax);
    return b === null ? "tok none" : `tok d${b}`;
  }
  if (opts.scale.mode === "rank") {
    const b = rankBucket(tok.rank, opts.scale.buckets);
    return b === null ? "tok none" : `tok r${b}`;
  }
  const b = bin(colourValue(tok, opts.scale.mode), 0, opts.scale.top);
  return b === null ? "tok none" : `tok c${b}`;
}
