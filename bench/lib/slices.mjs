/**
 * Measuring while other jobs share the machine: a phase is measured in slices (500 ms); a
 * slice during which processes other than ours used more than FOREIGN_LIMIT_CORES is left
 * out. The phase runs until it has `cleanMs` of clean slices or `maxMs` have passed; then
 * every slice counts and the phase is marked disturbed.
 */
import { sleep } from './children.mjs';

export const SLICE_MS = 500;
export const FOREIGN_LIMIT_CORES = 0.25;
/** A phase measures for at most this many times its nominal duration to collect clean slices. */
export const MAX_STRETCH = 2;

/**
 * `snap()` reads the counters; `diff(prev, cur)` turns two readings into a slice with at
 * least `seconds` and `others` (cores used by other processes). `during(first)` runs around
 * each sleep (e.g. to open a slice in the load generator; return what `diff` needs as
 * `cur.during`). `started` (performance.now()) is when the phase's measuring time began.
 * Resolves with { slices, used, disturbed, seconds (of the used slices), leftOutS, first, last }.
 */
export async function measureSlices({ snap, diff, cleanMs, maxMs = cleanMs * MAX_STRETCH, started, sliceMs = SLICE_MS, limit = FOREIGN_LIMIT_CORES, during }) {
  const first = await snap();
  const began = started ?? performance.now();
  let prev = first;
  let clean = 0;
  const slices = [];
  while (clean < cleanMs && performance.now() - began < maxMs) {
    const token = during?.();
    await sleep(sliceMs);
    const cur = await snap();
    const slice = diff(prev, cur, token);
    slice.clean = !(slice.others > limit);
    if (slice.clean) clean += slice.seconds * 1000;
    slices.push(slice);
    prev = cur;
  }
  const disturbed = clean < cleanMs;
  const used = disturbed ? slices : slices.filter((x) => x.clean);
  const seconds = used.reduce((n, x) => n + x.seconds, 0);
  return { slices, used, disturbed, seconds, leftOutS: slices.reduce((n, x) => n + x.seconds, 0) - seconds, first, last: prev };
}

/** Σ f(slice) over `slices`. */
export const sumOf = (slices, f) => slices.reduce((n, x) => n + f(x), 0);
