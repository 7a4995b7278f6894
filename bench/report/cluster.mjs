/**
 * The "## Cluster over Redis" section of BENCHMARKS.md, from the results of
 * bench/cluster.mjs (test-artifacts/bench/cluster.json).
 */
import { fmt, fmtInt, pct, signed } from '../lib/format.mjs';
import { machineLine } from '../lib/machine.mjs';
import { headline } from '../lib/results.mjs';
import { FOREIGN_LIMIT_CORES } from '../lib/slices.mjs';
import { median } from '../lib/stats.mjs';

export const HEADING = '## Cluster over Redis';
export const SUMMARY = 'Cluster over Redis';

const NAMES = {
  'one-node': 'one rallypoint node',
  'two-nodes': 'two rallypoint nodes + Redis',
  'socketio-redis': 'socket.io + redis-adapter, two nodes',
  'bare-redis': 'bare ws relays over Redis, two nodes (floor)',
  'redis-pubsub': 'Redis pub/sub alone',
};

/** Per round: p99 of `as` minus p99 of `bs` in the same round (paced); * when either was disturbed. */
function pairedP99(as, bs) {
  return as
    .map((r) => {
      const o = bs.find((x) => x.round === r.round);
      return o ? `${signed(r.paced.p99 - o.paced.p99, 2)}${r.paced.disturbed || o.paced.disturbed ? '*' : ''}` : 'n/a';
    })
    .join(', ');
}

function relayReport(results, config, headlines, date) {
  const { relayScenarios, rounds: ROUNDS, pacedRate: PACED_RATE, window, phase: PHASE } = config;
  const kinds = relayScenarios.filter((k) => results.some((r) => r.kind === k));
  const med = {};
  for (const k of kinds) {
    const rs = results.filter((r) => r.kind === k);
    // Medians over the rounds whose phase got enough quiet slices, if there are any.
    const pool = (phase) => (rs.some((r) => !r[phase].disturbed) ? rs.filter((r) => !r[phase].disturbed) : rs);
    const m = (phase, key) => median(pool(phase).map((r) => r[phase][key]));
    med[k] = { rounds: rs, sat: {}, paced: {} };
    for (const key of Object.keys(rs[0].saturated)) {
      if (typeof rs[0].saturated[key] === 'number') {
        med[k].sat[key] = m('saturated', key);
        med[k].paced[key] = m('paced', key);
      }
    }
  }
  const L = [];
  const usPerMsg = (x, redis) => (redis ? `${fmt(x.serverUs, 1)} + ${fmt(x.redisUs, 1)} = ${fmt(x.totalUs, 1)}` : `${fmt(x.serverUs, 1)}`);
  L.push(`Max relayed messages (A keeps ${window} in flight; ${PHASE.measureMs / 1000} s measured after ${PHASE.warmupMs / 1000} s warm-up), medians of ${ROUNDS} rounds:`, '');
  L.push('| scenario | relayed msg/s | rounds, msg/s | CPU µs/msg: servers + redis = total | Redis cmds/msg | load generator cores |');
  L.push('|---|---:|---|---:|---:|---:|');
  for (const k of kinds) {
    const s = med[k].sat;
    const perRound = med[k].rounds.map((r) => `${fmtInt(r.saturated.rate)}${r.saturated.disturbed ? '*' : ''}`).join(', ');
    L.push(
      `| ${NAMES[k]} | ${fmtInt(s.rate)} | ${perRound} | ${usPerMsg(s, k !== 'one-node')} | ${k === 'one-node' ? '-' : fmt(s.cmds, 2)} | ${fmt(s.genCores, 2)}${s.genCores > 0.9 ? ' (saturated)' : ''} |`,
    );
  }
  L.push('', `Paced: A sends ${fmtInt(PACED_RATE)} msg/s (one-way latency, send time stamped in the payload), medians of ${ROUNDS} rounds:`, '');
  L.push('| scenario | p50 ms | p99 ms | max ms | CPU µs/msg: servers + redis = total | Redis cmds/msg | server processes waiting for a CPU, ms/s |');
  L.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const k of kinds) {
    const p = med[k].paced;
    L.push(`| ${NAMES[k]} | ${fmt(p.p50, 3)} | ${fmt(p.p99, 3)} | ${fmt(p.max, 2)} | ${usPerMsg(p, k !== 'one-node')} | ${k === 'one-node' ? '-' : fmt(p.cmds, 2)} | ${fmt(p.waitMsPerS, 1)} |`);
  }
  L.push(
    '',
    'The last column: how long the server processes (their main threads, and redis-server) were runnable but waiting for a CPU, per second, summed (/proc/PID/schedstat): ' +
      "time that is this 2-core machine's scheduling (other jobs, the generator, and the scenario's own processes taking turns), not the code's work; " +
      'a message that arrives during such a wait is late by it, and each process a hop adds is one more chance.',
  );
  L.push('');
  const has = (k) => med[k] !== undefined;
  if (has('two-nodes') && has('one-node')) {
    const [a, b] = [med['two-nodes'], med['one-node']];
    const hop = a.paced.p99 - b.paced.p99;
    headlines.push(headline(SUMMARY, 'cross-node hop (two nodes − one node), paced p99', `${signed(hop, 3)} ms`, '< 1 ms', hop < 1, date));
    L.push(
      `- Two nodes vs one: ${pct(a.sat.rate / b.sat.rate)} of the msg/s, ${fmt(a.sat.totalUs / b.sat.totalUs, 2)}x the CPU per message at saturation ` +
        `(${fmt(a.paced.totalUs / b.paced.totalUs, 2)}x paced). The cross-node hop adds ${fmt(a.paced.p50 - b.paced.p50, 3)} ms p50 and ${fmt(hop, 3)} ms p99 ` +
        `at ${fmtInt(PACED_RATE)} msg/s (medians; per round, p99 two nodes − one node: ${pairedP99(a.rounds, b.rounds)} ms): ` +
        `**goal (< 1 ms p99) ${hop < 1 ? 'met' : 'NOT met'}**` +
        (has('bare-redis') ? ` (the bare relays' hop, the floor below, adds ${fmt(med['bare-redis'].paced.p99 - b.paced.p99, 3)} ms p99).` : '.'),
    );
  }
  if (has('two-nodes') && has('socketio-redis')) {
    const [a, s] = [med['two-nodes'], med['socketio-redis']];
    const met = a.sat.totalUs < s.sat.totalUs && a.paced.totalUs < s.paced.totalUs;
    headlines.push(
      headline(
        SUMMARY,
        'two nodes / socket.io redis-adapter, CPU per message incl. Redis (saturated, paced)',
        `${pct(a.sat.totalUs / s.sat.totalUs)}, ${pct(a.paced.totalUs / s.paced.totalUs)}`,
        '< 100 % (lower than socket.io)',
        met,
        date,
      ),
    );
    L.push(
      `- Two rallypoint nodes vs socket.io's adapter: ${pct(a.sat.rate / s.sat.rate)} of its msg/s; CPU per message incl. Redis ` +
        `${fmt(a.sat.totalUs, 1)} vs ${fmt(s.sat.totalUs, 1)} µs at saturation (${pct(a.sat.totalUs / s.sat.totalUs)}), ` +
        `${fmt(a.paced.totalUs, 1)} vs ${fmt(s.paced.totalUs, 1)} µs paced (${pct(a.paced.totalUs / s.paced.totalUs)}): ` +
        `**goal (lower than socket.io) ${met ? 'met' : 'NOT met'}**. p99 paced ${fmt(a.paced.p99, 3)} vs ${fmt(s.paced.p99, 3)} ms.`,
    );
  }
  if (has('bare-redis')) {
    const f = med['bare-redis'];
    const vs = has('two-nodes')
      ? `. Two rallypoint nodes against it: p99 ${signed(med['two-nodes'].paced.p99 - f.paced.p99, 3)} ms, ${fmt(med['two-nodes'].sat.totalUs / f.sat.totalUs, 2)}x its CPU per message at saturation (${fmt(med['two-nodes'].paced.totalUs / f.paced.totalUs, 2)}x paced)`
      : '';
    L.push(
      `- The floor of a cross-node hop on this machine, two bare \`ws\` relays over the same Redis (no validation, one SPUBLISH per signal): ` +
        `p50 ${fmt(f.paced.p50, 3)} ms, p99 ${fmt(f.paced.p99, 3)} ms at ${fmtInt(PACED_RATE)} msg/s, ${fmt(f.sat.totalUs, 1)} µs/msg at saturation${vs}.`,
    );
  }
  if (has('redis-pubsub')) {
    const f = med['redis-pubsub'].paced;
    L.push(
      `- Redis pub/sub alone (the Redis leg inside every cross-node hop, with the generator's own node-redis clients at both ends) at ${fmtInt(PACED_RATE)} msg/s: ` +
        `p50 ${fmt(f.p50, 3)} ms, p99 ${fmt(f.p99, 3)} ms, Redis ${fmt(f.redisUs, 1)} µs/msg.`,
    );
  }
  for (const k of kinds.filter((x) => x !== 'one-node')) {
    const calls = med[k].rounds[0].paced.calls;
    const main = Object.entries(calls)
      .filter(([, n]) => n >= 0.005)
      .sort((x, y) => y[1] - x[1]);
    const rest = Object.entries(calls).filter(([, n]) => n < 0.005);
    const list = [
      ...main.map(([c, n]) => `${c} ${fmt(n, 2)}`),
      ...(rest.length
        ? [
            `${rest.map(([c]) => c).join('/')} ${fmt(
              rest.reduce((x, [, n]) => x + n, 0),
              4,
            )} together (housekeeping)`,
          ]
        : []),
    ].join(', ');
    L.push(`- Redis commands per message, ${NAMES[k]} (paced, round 1): ${list || 'none'}.`);
  }
  const bad = results.filter((r) => r.saturated.errors || r.paced.errors || r.unexpected.length);
  L.push(
    bad.length
      ? `- WARNING: lost, reordered or unexpected frames in ${bad.map((r) => `${r.kind} round ${r.round + 1} (${r.unexpected.join(' | ') || `${r.saturated.errors + r.paced.errors} lost/out of order`})`).join('; ')}.`
      : '- Every signal arrived, in order, with no error frame.',
  );
  const leftOut = results.reduce((n, r) => n + r.saturated.leftOutS + r.paced.leftOutS, 0);
  const disturbed = results.flatMap((r) => [r.saturated, r.paced]).filter((x) => x.disturbed).length;
  L.push(
    `- Other jobs share this machine. Each phase is measured in 500 ms slices; a slice during which processes outside this benchmark used more than ${FOREIGN_LIMIT_CORES} cores ` +
      `is left out (this run: ${fmt(leftOut, 1)} s left out${disturbed ? `; ${disturbed} phase(s) never got ${PHASE.measureMs / 1000} s of quiet slices within twice that: they count every slice, are marked *, and stay out of the medians when the scenario has quiet rounds` : ''}). ` +
      `Other processes during the slices used (median, cores, saturated / paced; includes kernel network work): ${kinds.map((k) => `${k} ${fmt(med[k].sat.others, 2)} / ${fmt(med[k].paced.others, 2)}`).join(', ')}.`,
  );
  return L;
}

/** The section and the summary rows, from a results file of bench/cluster.mjs. */
export function render({ machine: m, config, results, failover: fo }) {
  const place = config.placement;
  const headlines = [];
  const L = [HEADING, ''];
  L.push('Command: `npm run bench:cluster` (builds, then runs `node bench/cluster.mjs`; the script rewrites this section).', '', machineLine(m), '');
  L.push(
    'Setup: one sender A and one receiver B in one room, in the load-generator process (one clock for send and receive times); ' +
      'A sends candidate-sized signals (~200 B payload) to B. One node: both on one `rallypoint serve`. Two nodes: `rallypoint serve --redis` ×2, A on node 1, B on node 2 ' +
      "(raw `ws` clients, `signal` frames). socket.io: two servers with `@socket.io/redis-adapter` (node-redis clients as its README shows), A on server 1 emits naming B's socket id, " +
      'server 1 does `io.to(bSocketId).emit(...)`, B on server 2 (socket.io-client, websocket transport only): the same work. ' +
      'Bare relays: the least a node can do (bench/lib/bare-redis-node.mjs), for the floor. A corks its socket so the frames of one tick leave in one write, for every scenario alike. ' +
      `Redis ${m.redis} without persistence, node-redis clients on both sides. ` +
      (place.pinned
        ? "Placement: while saturating, every server process and redis-server pinned to CPU 0 and the load generator to the other CPU (`taskset`), so each scenario's server side has one core and max msg/s reflects its total CPU per message; " +
          "in the paced phase no pinning (three server processes confined to one core would wait for each other's time slices, which nodes on separate machines do not); the failover storm pinned. "
        : `Placement: ${place.name}, no pinning. `) +
      'Rounds interleaved (each round: every scenario on fresh processes, order rotated). CPU: utime+stime from /proc/PID/stat over the measured seconds ÷ messages received.',
    '',
  );
  if (results.length) L.push(...relayReport(results, config, headlines, m.date), '');
  if (fo.length) L.push(...failoverReport(fo, config.failoverSettleMs), '');
  return { section: L.join('\n'), headlines };
}

function failoverReport(runs, SETTLE_MS) {
  const r0 = runs[0];
  const errors = (r) =>
    Object.entries(r.errors)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  const L = [
    `Failover: three \`rallypoint serve --redis\` nodes (pinned with Redis to CPU 0) behind a round-robin TCP proxy in the bench process (a refused connection goes to the next node, ` +
      `a dead upstream closes the client's connection), ${fmtInt(r0.clients)} SignalingClients (dist/, \`ws\`, default jittered backoff) in rooms of ${r0.roomSize}. ` +
      `One node SIGKILLed; time from the kill to each of its clients' \`welcome\` with \`resumed: true\` on a survivor. ${runs.length} run(s), fresh nodes each:`,
    '',
    "| run | clients on the killed node | resumed | not back | p50 s | p99 s | max s | new ids | peer-left (all clients) | survivors' CPU during the storm | Redis CPU | Redis commands per moved client |",
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|',
  ];
  runs.forEach((r, i) => {
    L.push(
      `| ${i + 1} | ${fmtInt(r.expected)} | ${fmtInt(r.resumed)} | ${fmtInt(r.notBack)} | ${fmt(r.p50 / 1000, 3)} | ${fmt(r.p99 / 1000, 3)} | ${fmt(r.max / 1000, 3)} | ${r.newIds} | ${r.peerLeft} | ` +
        `${fmt(r.survivorCores, 2)} cores over ${fmt(r.stormS, 2)} s (${r.perNode.map((x) => fmt(x, 2)).join(' + ')}), peak ${fmt(r.peakCores, 2)} incl. Redis | ${fmt(r.redisCores, 2)} cores | ${fmt(r.stormCalls / r.expected, 1)} |`,
    );
  });
  L.push(
    '',
    `- peer-left counted from the kill until ${SETTLE_MS / 1000} s after the last client was back. Per run: ` +
      runs
        .map(
          (r, i) =>
            `${i + 1}: joined in ${fmt(r.connectS, 1)} s; ${fmtInt(r.lost)} clients lost their connection (only the killed node's should); ${fmtInt(r.stillOpen)} open at the end; client errors: ${errors(r)}; ` +
            `bench process (clients, proxy) ${fmt(r.genCores, 2)} cores${r.genCores > 0.9 ? ' (saturated: the client side may have been the limit)' : ''}, other processes ${fmt(r.others, 2)} cores`,
        )
        .join('; ') +
      '.',
    '- "peak": the most the survivors and Redis used in one 100 ms sample; /proc counts in 10 ms ticks, so a sample may read up to ~0.1 core high.',
  );
  return L;
}
