/**
 * The /healthz-under-attack table (BENCHMARKS.md, "TURN relay: hardening"), from the results
 * of bench/turn-attack.mjs (test-artifacts/bench/turn-attack.json). The section around it is
 * written by hand.
 */
export const HEADING = '### /healthz under a datagram attack';
export const SUMMARY = 'TURN under attack';

/** The table, from a results file; no summary rows. */
export function render({ config: { rate, burst, burstEveryMs, seconds, root }, rows }) {
  const L = [`/healthz latency under attack (${rate}/s + bursts of ${burst} every ${burstEveryMs} ms, ${seconds} s each)`, ''];
  L.push('| attack | build | probes | datagrams sent | p50 ms | p99 ms | max ms |');
  L.push('|---|---|---:|---:|---:|---:|---:|');
  for (const r of rows) L.push(`| ${r.attack} | ${r.build.replace(`${root}/`, '')} | ${r.n} | ${r.sent} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(1)} |`);
  return { section: L.join('\n'), headlines: [] };
}
