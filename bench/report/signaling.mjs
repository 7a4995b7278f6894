/**
 * The "## Signaling relay" section of BENCHMARKS.md, from the results of
 * bench/signaling.mjs (test-artifacts/bench/signaling.json).
 */
import { fmt, fmtInt, pct } from '../lib/format.mjs';
import { machineLine } from '../lib/machine.mjs';
import { headline } from '../lib/results.mjs';
import { FOREIGN_LIMIT_CORES, SLICE_MS } from '../lib/slices.mjs';
import { medianBy } from '../lib/stats.mjs';

export const HEADING = '## Signaling relay';
export const SUMMARY = 'Signaling relay';

const NAMES = { ours: 'rallypoint (ours)', 'ours-nocoalesce': 'rallypoint without write coalescing', bare: 'bare ws relay', peerjs: 'PeerJS server 1.0.2' };
const nameOf = (k) => NAMES[k] ?? (k.startsWith('ours@') ? `rallypoint, build ${k.slice(5)}` : k);

function medianRound(rounds) {
  const sorted = [...rounds].sort((a, b) => a.saturated.rate - b.saturated.rate);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** The section and the summary rows, from a results file of bench/signaling.mjs. */
export function render({ machine: m, config: CONFIG, results, idle }) {
  const lines = [];
  const kept = results;
  const by = Object.fromEntries(CONFIG.servers.map((k) => [k, kept.filter((r) => r.kind === k)]));
  // The median is taken over the rounds that got enough quiet time, if there are any.
  const quiet = Object.fromEntries(
    CONFIG.servers.map((k) => {
      const q = by[k].filter((r) => !r.saturated.disturbed);
      return [k, q.length ? q : by[k]];
    }),
  );
  const med = Object.fromEntries(CONFIG.servers.map((k) => [k, quiet[k].length ? medianRound(quiet[k]) : null]));
  const cpuMed = Object.fromEntries(CONFIG.servers.map((k) => [k, quiet[k].length ? medianBy(quiet[k], (r) => r.saturated.cpuUsPerMsg).saturated.cpuUsPerMsg : NaN]));
  const paced = !CONFIG.skipPaced;
  lines.push(HEADING);
  lines.push('');
  lines.push('Command: `npm run bench:signaling` (builds, then runs `node bench/signaling.mjs`; the script rewrites this section).');
  lines.push('');
  lines.push(machineLine(m));
  lines.push('');
  lines.push(
    `Setup: ${CONFIG.pairs} sender/receiver pairs spread over ${CONFIG.workers} load processes (sender and receiver of a pair in one process, ` +
      `so the send timestamp inside the signal data and the receive time share a clock). Each sender keeps ${CONFIG.window} candidate-sized ` +
      `signals in flight (${results[0]?.frameBytes ?? '?'} B frames; closed loop, so the server is saturated with bounded in-flight). ` +
      'The load processes write the frames a sender sends within one tick in one socket write and mask with zeros, to stay cheap; ' +
      'every server sees the same traffic. ' +
      `${CONFIG.warmupMs / 1000} s warm-up, then ${CONFIG.measureMs / 1000} s measured. ${CONFIG.roundsDone ?? CONFIG.rounds} rounds interleaved ` +
      `(${CONFIG.servers.join(', ')}, ${CONFIG.servers.join(', ')}, ...), each server in a fresh child process; the median round (by msg/s) ` +
      'of those not disturbed by other jobs (see below) is reported, and its latencies. ' +
      (paced ? `Then, on the same connections, ${fmtInt(CONFIG.pacedRate)} msg/s offered at a steady pace for ${CONFIG.pacedMs / 1000} s (latency below saturation). ` : '') +
      `Placement: ${CONFIG.placement === 'pinned' ? 'server process pinned to CPU 0, load processes to the other CPU(s) (`taskset`)' : CONFIG.placement}. ` +
      `With ${m.cores} cores the load generator needs about as much CPU as the server and shares the machine with it, so absolute msg/s are a lower bound ` +
      'for the server; the ratios and the server CPU time per message are the figures to compare.',
  );
  lines.push('');
  lines.push(`| server | relayed msg/s | p50 ms | p99 ms | server CPU | server CPU µs/msg | rounds, msg/s |${paced ? ` p50 / p99 ms at ${fmtInt(CONFIG.pacedRate)} msg/s |` : ''}`);
  lines.push(`|---|---:|---:|---:|---:|---:|---|${paced ? '---:|' : ''}`);
  // rounds marked * did not get enough quiet time; the medians leave them out when they can
  for (const k of CONFIG.servers) {
    const r = med[k];
    if (!r) continue;
    const name = nameOf(k);
    const s = r.saturated;
    const roundsText = by[k].map((x) => `${fmtInt(x.saturated.rate)}${x.saturated.disturbed ? '*' : ''}`).join(', ');
    let row = `| ${name} | ${fmtInt(s.rate)} | ${fmt(s.p50, 2)} | ${fmt(s.p99, 2)} | ${pct(s.serverCpu)} | ${fmt(cpuMed[k], 1)} | ${roundsText} |`;
    if (paced) {
      const quietPaced = by[k].map((x) => x.paced).filter((p) => p && !p.disturbed);
      const ps = quietPaced.length ? quietPaced : by[k].map((x) => x.paced).filter(Boolean);
      const p = ps.length ? medianBy(ps, (x) => x.p50) : null;
      row += p ? ` ${fmt(p.p50, 2)} / ${fmt(p.p99, 2)}${p.skipped ? ` (${fmtInt(p.skipped)} not sent)` : ''} |` : ' n/a |';
    }
    lines.push(row);
  }
  lines.push('');
  const thr = (a, b) => (med[a] && med[b] ? med[a].saturated.rate / med[b].saturated.rate : NaN);
  const eff = (a, b) => cpuMed[b] / cpuMed[a];
  const paired = (a, b) =>
    by[a]
      .map((ra) => {
        const rb = by[b].find((x) => x.round === ra.round);
        return rb ? { ratio: ra.saturated.rate / rb.saturated.rate, disturbed: ra.saturated.disturbed || rb.saturated.disturbed } : null;
      })
      .filter(Boolean);
  const pairedText = (a, b) => {
    const r = paired(a, b);
    if (!r.length) return 'n/a';
    const q = r.filter((x) => !x.disturbed);
    const pool = q.length ? q : r;
    return (
      `per round ${r.map((x) => `${pct(x.ratio)}${x.disturbed ? '*' : ''}`).join(', ')}; ` + `median of the ${q.length ? 'undisturbed pairs' : 'pairs'} ${pct(medianBy(pool, (x) => x.ratio).ratio)}`
    );
  };
  if (med.ours && med.bare) {
    lines.push(
      `- **ours / bare: ${pct(thr('ours', 'bare'))} of the throughput** (median rounds; target >= 90 %). Paired with the bare round next to it: ${pairedText('ours', 'bare')}. ` +
        `CPU efficiency (bare µs/msg ÷ ours µs/msg, medians): ${pct(eff('ours', 'bare'))}.`,
    );
  }
  if (med.ours && med.peerjs) {
    lines.push(`- **ours / PeerJS: ${pct(thr('ours', 'peerjs'))} of the throughput** (${pairedText('ours', 'peerjs')}); CPU efficiency ${pct(eff('ours', 'peerjs'))}.`);
  }
  const bad = results.filter((r) => r.saturated.errors || r.saturated.seqErrors || r.paced?.errors || r.paced?.seqErrors);
  lines.push(
    bad.length
      ? `- WARNING: ${bad.length} round(s) saw error frames or lost/reordered signals: ${bad.map((r) => `${r.kind} round ${r.round + 1}`).join(', ')}.`
      : '- Every relayed signal arrived, in order per sender, with no error frame; every 256th frame was parsed and checked in full.',
  );
  lines.push(
    '- "server CPU": the server process\'s user+system CPU time over wall time during the measured seconds (100 % = one core). ' +
      'Latency at saturation is mostly queueing (in flight ÷ throughput), hence the paced column.',
  );
  const disturbed = kept.filter((r) => r.saturated.disturbed || r.paced?.disturbed);
  const leftOut = kept.reduce((n, r) => n + r.saturated.leftOutS + (r.paced?.leftOutS ?? 0), 0);
  lines.push(
    `- Other jobs may share this machine. The script waits for idle CPUs before each round and measures in ${SLICE_MS} ms slices, ` +
      `leaving out a slice during which processes other than the server and the load workers used more than ${FOREIGN_LIMIT_CORES} cores ` +
      `(this run: ${fmt(leftOut, 1)} s left out${disturbed.length ? `; ${disturbed.length} phase(s) never got enough quiet time within twice their length: they count every slice, are marked *, and stay out of the medians when a server has undisturbed rounds` : ''}). ` +
      `Other processes in the reported rounds (includes kernel network work not charged to any process): ${CONFIG.servers
        .filter((k) => med[k])
        .map((k) => `${k} ${fmt(med[k].saturated.foreignCores, 2)}`)
        .join(', ')} cores.`,
  );
  lines.push('');
  if (idle.length) {
    lines.push(
      `Idle connections: ${fmtInt(CONFIG.idle)} WebSocket clients opened and joined (rooms of 2) from ${CONFIG.idleWorkers} load processes, ` +
        'then left idle; server RSS (after a forced GC) before the first and after the last, divided by the number of connections.',
    );
    lines.push('');
    lines.push('| server | connections | RSS before MB | RSS after MB | RSS per connection KB | JS heap per connection KB | time to connect s |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|');
    for (const r of idle) {
      lines.push(
        `| ${nameOf(r.kind)} | ${fmtInt(r.serverConnections ?? r.sockets)} | ${fmt(r.rssBefore / 2 ** 20)} | ${fmt(r.rssAfter / 2 ** 20)} | ${fmt(r.kbPerConn, 2)} | ${fmt(r.heapKbPerConn, 2)} | ${fmt(r.connectSeconds, 1)} |`,
      );
    }
    lines.push('');
  }
  const headlines = [];
  if (med.ours && med.bare) headlines.push(headline(SUMMARY, 'rallypoint / bare `ws` relay, relayed msg/s', pct(thr('ours', 'bare')), '>= 90 %', thr('ours', 'bare') >= 0.9, m.date));
  if (med.ours && med.peerjs) headlines.push(headline(SUMMARY, 'rallypoint / PeerJS server, relayed msg/s', pct(thr('ours', 'peerjs')), 'none (for scale)', null, m.date));
  return { section: lines.join('\n'), headlines };
}
