/**
 * The "## Hot paths before and after" section of BENCHMARKS.md, from the results of
 * bench/hotpaths.mjs (test-artifacts/bench/hotpaths.json).
 */
import { fmt, fmtInt } from '../lib/format.mjs';
import { machineLine } from '../lib/machine.mjs';
import { headline } from '../lib/results.mjs';
import { median } from '../lib/stats.mjs';

export const HEADING = '## Hot paths before and after';
export const SUMMARY = 'Hot paths before/after';

/** A change within this of 1x is noise on this machine (rounds of one build vary by more). */
const TARGET = 0.95;
const ratio = (x) => (Number.isFinite(x) ? `${fmt(x, 2)}x` : 'n/a');

/** Median of `f` over the undisturbed records of `build` (all of them when none is). */
function med(records, build, f) {
  const of = records.filter((r) => r.build === build);
  const quiet = of.filter((r) => !r.disturbed);
  return median((quiet.length ? quiet : of).map(f));
}

/** The section and the summary rows, from a results file of bench/hotpaths.mjs. */
export function render({ machine: m, config: C, signaling, relay, turn, channels, seconds }) {
  const rows = [];
  /** `higher`: true when a larger figure is better (throughput), false for costs. */
  const row = (path, measure, records, f, higher, digits = 0) => {
    if (!records?.length) return;
    const before = med(records, 'before', f);
    const after = med(records, 'after', f);
    const show = (x) => (digits ? fmt(x, digits) : fmtInt(x));
    // Rounds drift on a shared machine (other jobs come and go): each round's after / before,
    // the two measured next to each other, says more than the ratio of the medians.
    const paired = [];
    for (const round of new Set(records.map((r) => r.round))) {
      const a = records.find((r) => r.round === round && r.build === 'after');
      const b = records.find((r) => r.round === round && r.build === 'before');
      if (!a || !b || a.disturbed || b.disturbed) continue;
      paired.push(higher ? f(a) / f(b) : f(b) / f(a));
    }
    const speed = paired.length ? median(paired) : higher ? after / before : before / after;
    rows.push({ path, measure, before: show(before), after: show(after), speed, paired });
  };
  row('Signaling relay (signals)', 'relayed msg/s, saturated', signaling, (r) => r.rate, true);
  row('Signaling relay (signals)', 'server CPU µs per message', signaling, (r) => r.cpuUsPerMsg, false, 2);
  row('Signaling relay (signals)', 'p99 ms at a steady pace', signaling, (r) => r.pacedP99, false, 2);
  row('Relay frames (data fallback)', 'relayed msg/s, saturated', relay, (r) => r.rate, true);
  row('Relay frames (data fallback)', 'server CPU µs per message', relay, (r) => r.cpuUsPerMsg, false, 2);
  row('Relay frames (data fallback)', 'p99 ms at a steady pace', relay, (r) => r.pacedP99, false, 2);
  for (const method of ['channel', 'send']) {
    const rs = turn?.filter((r) => r.method === method);
    const name = `TURN data path (${method === 'channel' ? 'ChannelData' : 'Send indications'})`;
    row(name, 'relayed packets/s, saturated', rs, (r) => r.packetsPerS, true);
    row(name, 'server CPU µs per packet', rs, (r) => r.cpuUsPerPacket, false, 2);
  }
  row('Reliable stream, 200 B messages', 'CPU ns per message, both ends', channels, (r) => r.reliableSmall.cpuNsPerMessage, false);
  row('Reliable stream, 16 KiB messages', 'CPU ns per message, both ends', channels, (r) => r.reliableBulk.cpuNsPerMessage, false);
  row('Unreliable stream, 200 B messages', 'CPU ns per message, both ends', channels, (r) => r.unreliableSmall.cpuNsPerMessage, false);

  const L = [HEADING, ''];
  L.push('Command: `npm run bench:hotpaths` (builds, then runs `node bench/hotpaths.mjs`; the script rewrites this section).', '');
  L.push(machineLine(m), '');
  L.push(
    `Before: commit ${C.beforeCommit} (\`--before ${C.before}\`), exported with \`git archive\` and compiled with this tree's dependencies. After: ${C.after}. ` +
      `Both under the same load in one run (${fmt(seconds / 60, 1)} min), alternated: ${C.rounds} interleaved rounds per build (which goes first swapped every round) of \`bench/signaling.mjs\` ` +
      '(100 sender/receiver pairs, 8 in flight each, 280 B frames; once with signals and once with `relay` frames, the data fallback, relay limits raised out of the way) ' +
      'and of `bench/turn.mjs` (the embedded TURN server with loopback allowed, ChannelData and Send indications), each server in a fresh process pinned to CPU 0; ' +
      `and ${C.microRounds} runs per build of \`bench/lib/channel-micro.mjs\` (two channels of one build joined by an in-memory data channel pair: ` +
      "the library's encoding, framing, numbering, outbox, acknowledgements and reassembly, 200,000 messages of 200 B or 40,000 of 16 KiB), one process per run, the order swapped every round. " +
      'Medians over the rounds not disturbed by other jobs. "after / before" is the speed ratio, per round (the two builds measured next to each other) and its median: above 1x the restructured code is faster (more per second, or less CPU per message).',
    '',
  );
  L.push('| hot path | measure | before (median) | after (median) | after / before per round | after / before (median of rounds) |', '|---|---|---:|---:|---|---:|');
  for (const r of rows) L.push(`| ${r.path} | ${r.measure} | ${r.before} | ${r.after} | ${r.paired.map((x) => fmt(x, 2)).join(', ')} | ${ratio(r.speed)} |`);
  L.push('');
  const throughput = rows.filter((r) => /per second|msg\/s|packets\/s|CPU/.test(r.measure) && !/p99/.test(r.measure));
  const worst = throughput.reduce((a, b) => (b.speed < a.speed ? b : a), throughput[0]);
  if (worst) {
    L.push(
      `- Slowest ratio: **${ratio(worst.speed)}** (${worst.path}, ${worst.measure}); target: no drop beyond noise (>= ${TARGET}x). ` +
        "Latency at a steady pace is shown but not judged: at 20,000 msg/s both builds are far from saturation and the p99 is the machine's scheduling.",
      '',
    );
  }
  const headlines = worst
    ? [headline(SUMMARY, 'restructured / before, slowest hot path (throughput or CPU per message)', `${ratio(worst.speed)} (${worst.path})`, `>= ${TARGET}x`, worst.speed >= TARGET, m.date)]
    : [];
  return { section: L.join('\n'), headlines };
}
