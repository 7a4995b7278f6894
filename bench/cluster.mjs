#!/usr/bin/env node
/**
 * Cluster benchmark: what a message to one client on another node costs. Not a test: it
 * prints markdown and rewrites the "## Cluster over Redis" section of BENCHMARKS.md.
 *
 *   npm run bench:cluster                         # build, then the full run
 *   node bench/cluster.mjs --rounds 1 --no-write  # quick look; dist/ must be built
 *   options: --scenarios one-node,two-nodes,socketio-redis,bare-redis,failover (also: redis-pubsub)  --rounds 5  --window 1024
 *            --paced-rate 5000 --warmup-ms 1000 --measure-ms 3000  --placement pinned|shared (see the placement comment below)
 *            --clients 2000 --room-size 20 --failover-runs 3 (failover)
 *
 * Relay scenarios, interleaved round by round (each round starts fresh server processes,
 * in a rotating order so machine noise hits all alike):
 *   one-node        one `rallypoint serve`, A and B on it
 *   two-nodes       two `rallypoint serve --redis` on one Redis, A on n1, B on n2
 *   socketio-redis  two socket.io servers with @socket.io/redis-adapter on one Redis, A on
 *                   server 1, B on server 2; server 1 does io.to(B).emit(...)
 *   bare-redis      two bare `ws` relays (bench/lib/bare-redis-node.mjs: no validation, one
 *                   SPUBLISH per signal to the target's node), A on 1, B on 2: the floor
 *                   under a cross-node hop on this machine
 *   redis-pubsub    (not by default) no server: the payload through Redis alone (SPUBLISH
 *                   -> SSUBSCRIBE, node-redis, both ends in this process)
 * In each: A keeps a window of signals in flight (max msg/s), then A sends at a fixed pace
 * (latency). Server CPU is utime+stime from /proc/PID/stat of the server processes and of
 * redis-server over the measured seconds, divided by the messages B received; Redis
 * commands per message from INFO commandstats (our own INFO calls left out).
 * failover: see bench/lib/cluster-failover.mjs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FOREIGN_LIMIT_CORES, drive, rallypointPair, redisPubSubPair, socketIoPair } from './lib/cluster-load.mjs';
import { killAll, startBareRedis, startRallypoint, startRedis, startSocketIo, stop } from './lib/cluster-procs.mjs';
import { failover, failoverReport } from './lib/cluster-failover.mjs';
import { quantile } from './lib/hist.mjs';
import { placement, waitQuiet } from './lib/placement.mjs';
import { processCpuSeconds, runQueueWaitSeconds } from './lib/proc-cpu.mjs';
import { fmt, fmtInt, machine, machineLine, median, pct, writeSection } from './lib/report.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    scenarios: { type: 'string', default: 'one-node,two-nodes,socketio-redis,bare-redis,failover' },
    rounds: { type: 'string', default: '5' },
    window: { type: 'string', default: '1024' },
    'paced-rate': { type: 'string', default: '5000' },
    'warmup-ms': { type: 'string', default: '1000' },
    'measure-ms': { type: 'string', default: '3000' },
    placement: { type: 'string', default: 'pinned' },
    clients: { type: 'string', default: '2000' },
    'room-size': { type: 'string', default: '20' },
    'failover-runs': { type: 'string', default: '3' },
    'no-write': { type: 'boolean', default: false },
  },
});
const scenarios = args.scenarios.split(',').filter(Boolean);
const relayScenarios = scenarios.filter((s) => s !== 'failover');
const ROUNDS = Number(args.rounds);
const PACED_RATE = Number(args['paced-rate']);
const PHASE = { warmupMs: Number(args['warmup-ms']), measureMs: Number(args['measure-ms']) };
const HEADING = '## Cluster over Redis (issue 10)';

// Placement "pinned" (the default with 2+ CPUs): while saturating, every server process and
// redis-server run on CPU 0 and this process (the load generator) on the others, so the
// generator never takes the servers' CPU and each scenario's server side has one core. In
// the paced phase everything may run anywhere (the generator needs little CPU at that rate,
// and three server processes confined to one core would wait for each other's time slices,
// which no deployment on separate machines does). The failover storm runs pinned.
const place = placement(args.placement);
const SERVER_CPUS = place.serverCpus;
const LOAD_CPUS = place.loadCpus;
const ALL_CPUS = place.allCpus;
const pin = (pids, cpus) => place.pin(pids, cpus);

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => (killAll(), process.exit(130)));
process.on('exit', killAll);

/** Starts one scenario's servers and its A/B pair. */
async function setUp(kind, redis, round) {
  const room = `bench-${round}`;
  if (kind === 'one-node') {
    const n = await startRallypoint({ cpus: SERVER_CPUS });
    return { servers: [n], usesRedis: false, pair: await rallypointPair(n.wsUrl, n.wsUrl, room) };
  }
  if (kind === 'two-nodes') {
    // Fresh node ids each round: a stopped node's records may outlive it in Redis for their TTL.
    const [n1, n2] = await Promise.all(['n1', 'n2'].map((id) => startRallypoint({ redisUrl: redis.url, nodeId: `${id}r${round}`, cpus: SERVER_CPUS })));
    return { servers: [n1, n2], usesRedis: true, pair: await rallypointPair(n1.wsUrl, n2.wsUrl, room) };
  }
  if (kind === 'socketio-redis') {
    const [s1, s2] = await Promise.all([1, 2].map(() => startSocketIo({ redisUrl: redis.url, cpus: SERVER_CPUS })));
    return { servers: [s1, s2], usesRedis: true, pair: await socketIoPair(s1.url, s2.url) };
  }
  if (kind === 'bare-redis') {
    const [n1, n2] = await Promise.all(['b1', 'b2'].map((id) => startBareRedis({ redisUrl: redis.url, nodeId: `${id}r${round}`, cpus: SERVER_CPUS })));
    return { servers: [n1, n2], usesRedis: true, pair: await rallypointPair(n1.wsUrl, n2.wsUrl, room) };
  }
  if (kind === 'redis-pubsub') return { servers: [], usesRedis: true, pair: await redisPubSubPair(redis.url) };
  throw new Error(`unknown scenario ${kind}`);
}

/** One scenario, one round: saturation, then the paced phase, on fresh servers. */
async function relayRound(kind, redis, round) {
  const setup = await setUp(kind, redis, round);
  const probe = async () => ({
    servers: setup.servers.reduce((n, s) => n + processCpuSeconds(s.pid), 0),
    redis: setup.usesRedis ? processCpuSeconds(redis.pid) : 0,
    wait: [...setup.servers.map((x) => x.pid), ...(setup.usesRedis ? [redis.pid] : [])].reduce((n, pid) => n + runQueueWaitSeconds(pid), 0),
    calls: setup.usesRedis ? await redis.commandCalls() : {},
  });
  const summarize = (r) => {
    const calls = {};
    for (const [cmd, n] of Object.entries(r.calls)) if (n > 0) calls[cmd] = n / r.messages;
    const serverUs = (r.servers * 1e6) / r.messages;
    const redisUs = (r.redis * 1e6) / r.messages;
    return {
      rate: r.rate, p50: quantile(r.hist, 0.5), p99: quantile(r.hist, 0.99), max: r.maxMs,
      serverUs, redisUs, totalUs: serverUs + redisUs,
      cmds: Object.values(calls).reduce((a, b) => a + b, 0), calls,
      waitMsPerS: (r.wait * 1000) / r.seconds,
      genCores: r.genCores, others: r.others, disturbed: r.disturbed, leftOutS: r.leftOutS,
      errors: r.seqErrors + r.lost,
    };
  };
  const serverPids = [...setup.servers.map((x) => x.pid), redis.pid];
  try {
    pin(serverPids, SERVER_CPUS);
    pin([process.pid], LOAD_CPUS);
    const saturated = summarize(await drive(setup.pair, { mode: 'window', window: Number(args.window), ...PHASE, probe }));
    pin([...serverPids, process.pid], ALL_CPUS);
    const paced = summarize(await drive(setup.pair, { mode: 'paced', rate: PACED_RATE, ...PHASE, probe }));
    return { kind, round, saturated, paced, unexpected: [...setup.pair.unexpected] };
  } finally {
    await setup.pair.close();
    await Promise.all(setup.servers.map((s) => stop(s.child)));
  }
}

// ---- report -----------------------------------------------------------------------------

const NAMES = {
  'one-node': 'one rallypoint node',
  'two-nodes': 'two rallypoint nodes + Redis',
  'socketio-redis': 'socket.io + redis-adapter, two nodes',
  'bare-redis': 'bare ws relays over Redis, two nodes (floor)',
  'redis-pubsub': 'Redis pub/sub alone',
};

const signed = (n, d) => (Number.isFinite(n) ? `${n < 0 ? '−' : '+'}${fmt(Math.abs(n), d)}` : 'n/a');

/** Per round: p99 of `as` minus p99 of `bs` in the same round (paced); * when either was disturbed. */
function pairedP99(as, bs) {
  return as
    .map((r) => {
      const o = bs.find((x) => x.round === r.round);
      return o ? `${signed(r.paced.p99 - o.paced.p99, 2)}${r.paced.disturbed || o.paced.disturbed ? '*' : ''}` : 'n/a';
    })
    .join(', ');
}

function relayReport(results) {
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
  L.push(`Max relayed messages (A keeps ${args.window} in flight; ${PHASE.measureMs / 1000} s measured after ${PHASE.warmupMs / 1000} s warm-up), medians of ${ROUNDS} rounds:`, '');
  L.push('| scenario | relayed msg/s | rounds, msg/s | CPU µs/msg: servers + redis = total | Redis cmds/msg | load generator cores |');
  L.push('|---|---:|---|---:|---:|---:|');
  for (const k of kinds) {
    const s = med[k].sat;
    const perRound = med[k].rounds.map((r) => `${fmtInt(r.saturated.rate)}${r.saturated.disturbed ? '*' : ''}`).join(', ');
    L.push(`| ${NAMES[k]} | ${fmtInt(s.rate)} | ${perRound} | ${usPerMsg(s, k !== 'one-node')} | ${k === 'one-node' ? '-' : fmt(s.cmds, 2)} | ${fmt(s.genCores, 2)}${s.genCores > 0.9 ? ' (saturated)' : ''} |`);
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
      'time that is this 2-core machine\'s scheduling (other jobs, the generator, and the scenario\'s own processes taking turns), not the code\'s work; ' +
      'a message that arrives during such a wait is late by it, and each process a hop adds is one more chance.',
  );
  L.push('');
  const has = (k) => med[k] !== undefined;
  if (has('two-nodes') && has('one-node')) {
    const [a, b] = [med['two-nodes'], med['one-node']];
    const hop = a.paced.p99 - b.paced.p99;
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
    const main = Object.entries(calls).filter(([, n]) => n >= 0.005).sort((x, y) => y[1] - x[1]);
    const rest = Object.entries(calls).filter(([, n]) => n < 0.005);
    const list = [
      ...main.map(([c, n]) => `${c} ${fmt(n, 2)}`),
      ...(rest.length ? [`${rest.map(([c]) => c).join('/')} ${fmt(rest.reduce((x, [, n]) => x + n, 0), 4)} together (housekeeping)`] : []),
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

function report(m, results, fo) {
  const L = [HEADING, ''];
  L.push('Command: `npm run bench:cluster` (builds, then runs `node bench/cluster.mjs`; the script rewrites this section).', '', machineLine(m), '');
  L.push(
    'Setup: one sender A and one receiver B in one room, in the load-generator process (one clock for send and receive times); ' +
      'A sends candidate-sized signals (~200 B payload) to B. One node: both on one `rallypoint serve`. Two nodes: `rallypoint serve --redis` ×2, A on node 1, B on node 2 ' +
      '(raw `ws` clients, `signal` frames). socket.io: two servers with `@socket.io/redis-adapter` (node-redis clients as its README shows), A on server 1 emits naming B\'s socket id, ' +
      'server 1 does `io.to(bSocketId).emit(...)`, B on server 2 (socket.io-client, websocket transport only): the same work. ' +
      'Bare relays: the least a node can do (bench/lib/bare-redis-node.mjs), for the floor. A corks its socket so the frames of one tick leave in one write, for every scenario alike. ' +
      `Redis ${redisVersion()} without persistence, node-redis clients on both sides. ` +
      (place.pinned
        ? 'Placement: while saturating, every server process and redis-server pinned to CPU 0 and the load generator to the other CPU (`taskset`), so each scenario\'s server side has one core and max msg/s reflects its total CPU per message; ' +
          'in the paced phase no pinning (three server processes confined to one core would wait for each other\'s time slices, which nodes on separate machines do not); the failover storm pinned. '
        : `Placement: ${place.name}, no pinning. `) +
      'Rounds interleaved (each round: every scenario on fresh processes, order rotated). CPU: utime+stime from /proc/PID/stat over the measured seconds ÷ messages received.',
    '',
  );
  if (results.length) L.push(...relayReport(results), '');
  if (fo.length) L.push(...failoverReport(fo), '');
  return L.join('\n');
}

function redisVersion() {
  try {
    return execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)?.[1] ?? '?';
  } catch {
    return '?';
  }
}

// ---- main -------------------------------------------------------------------------------

async function main() {
  const began = performance.now();
  const m = machine();
  console.log(`cluster benchmark: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}; placement ${place.name}`);
  if (!existsSync(join(root, 'dist', 'signaling', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (or `npm run bench:cluster`)');
  const redis = await startRedis(SERVER_CPUS);
  const results = [];
  for (let round = 0; round < (relayScenarios.length ? ROUNDS : 0); round++) {
    const order = relayScenarios.map((_, i) => relayScenarios[(i + round) % relayScenarios.length]);
    for (const kind of order) {
      await waitQuiet();
      const r = await relayRound(kind, redis, round);
      results.push(r);
      const [s, p] = [r.saturated, r.paced];
      console.log(
        `round ${round + 1} ${kind.padEnd(14)} ${fmtInt(s.rate).padStart(7)} msg/s  ${fmt(s.totalUs, 1)} µs/msg (redis ${fmt(s.redisUs, 1)})  ` +
          `${fmt(s.cmds, 2)} cmds/msg  gen ${fmt(s.genCores, 2)} others ${fmt(s.others, 2)} cores | paced p50 ${fmt(p.p50, 3)} p99 ${fmt(p.p99, 3)} max ${fmt(p.max, 2)} ms  ` +
          `${fmt(p.totalUs, 1)} µs/msg wait ${fmt(p.waitMsPerS, 1)} ms/s others ${fmt(p.others, 2)}${s.disturbed || p.disturbed ? ` DISTURBED (${s.disturbed ? 'sat' : ''}${p.disturbed ? ' paced' : ''})` : ''}${s.errors || p.errors || r.unexpected.length ? `  ERRORS ${s.errors + p.errors} ${r.unexpected.join(' | ')}` : ''}`,
      );
    }
  }
  pin([redis.pid], SERVER_CPUS);
  pin([process.pid], LOAD_CPUS);
  const fo = [];
  for (let i = 0; i < (scenarios.includes('failover') ? Number(args['failover-runs']) : 0); i++) {
    fo.push(await failover({ redis, cpus: SERVER_CPUS, clients: Number(args.clients), roomSize: Number(args['room-size']), log: console.log }));
  }
  await redis.stop();
  const section = report(m, results, fo);
  console.log(`\n${section}`);
  if (!args['no-write']) console.log(`written to ${writeSection(root, /^## Cluster over Redis \(issue 10\)[ \t]*$/m, section)}`);
  console.log(`total ${fmt((performance.now() - began) / 1000, 0)} s`);
}

main().then(
  () => (killAll(), process.exit(0)),
  (err) => (console.error(err?.stack ?? err), killAll(), process.exit(1)),
);
