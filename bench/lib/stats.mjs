/**
 * Quantiles and medians over plain arrays (bench/lib/hist.mjs is the mergeable latency
 * histogram the load processes send). Each function keeps the convention the reports have
 * always used, so figures compare with earlier runs.
 */

/** Nearest rank: the value at index ceil(q·n) - 1 of `sorted` (ascending); NaN when empty. */
export function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The value at index floor(q·n) of `sorted`: the /healthz table's convention (bench/turn-attack.mjs). */
export function quantileFloor(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** n, min, p50, p90, p99 (nearest rank) and max of `values`. */
export function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, min: s[0] ?? NaN, p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s[s.length - 1] ?? NaN };
}

/** The median of the finite values (the mean of the two middle ones for an even count); NaN when none. */
export function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The item whose `f` is the median (the lower middle one for an even count). */
export function medianBy(items, f) {
  const sorted = [...items].sort((a, b) => f(a) - f(b));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}
