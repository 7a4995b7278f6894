/**
 * A log-linear latency histogram that can be merged across processes: bucket i holds
 * values in [B^i, B^(i+1)) microseconds with B = 1.01 (1 % resolution), 1 µs .. ~100 s.
 */
const BASE = 1.01;
const LOG_BASE = Math.log(BASE);
export const BUCKETS = Math.ceil(Math.log(100e6) / LOG_BASE) + 1;

export function newHist() {
  return new Uint32Array(BUCKETS);
}

/** Records a latency in milliseconds. */
export function record(hist, ms) {
  const us = ms * 1000;
  let i = us <= 1 ? 0 : Math.floor(Math.log(us) / LOG_BASE);
  if (i >= BUCKETS) i = BUCKETS - 1;
  hist[i]++;
}

export function merge(into, from) {
  for (let i = 0; i < BUCKETS; i++) into[i] += from[i] ?? 0;
  return into;
}

export function count(hist) {
  let n = 0;
  for (let i = 0; i < BUCKETS; i++) n += hist[i];
  return n;
}

/** The q-quantile (0..1) in milliseconds (bucket midpoint, ±0.5 %). */
export function quantile(hist, q) {
  const n = count(hist);
  if (n === 0) return NaN;
  const target = Math.max(1, Math.ceil(q * n));
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += hist[i];
    if (seen >= target) return (BASE ** i * (1 + BASE)) / 2 / 1000;
  }
  return NaN;
}

/** Adds a histogram sent as [bucket, count, bucket, count, ...] (as the load processes send their slices) to `hist`. */
export function mergeSparse(hist, sparse) {
  for (let i = 0; i < sparse.length; i += 2) hist[sparse[i]] += sparse[i + 1];
  return hist;
}

/** [bucket, count, ...] for the non-empty buckets of `hist`. */
export function toSparse(hist) {
  const sparse = [];
  for (let i = 0; i < hist.length; i++) if (hist[i]) sparse.push(i, hist[i]);
  return sparse;
}
