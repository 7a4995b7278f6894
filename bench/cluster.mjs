#!/usr/bin/env node
/**
 * Cluster benchmark: what a message to one client on another node costs. Not a test: it
 * measures into test-artifacts/bench/cluster.json (or --json FILE), then renders the
 * "## Cluster over Redis" section of BENCHMARKS.md from it (bench/report/cluster.mjs).
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
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, list } from './lib/args.mjs';
import { runMain } from './lib/children.mjs';
import { failover, SETTLE_MS } from './lib/cluster-failover.mjs';
import { drive, rallypointPair, redisPubSubPair, socketIoPair } from './lib/cluster-load.mjs';
import { startBareRedis, startRallypoint, startRedis, startSocketIo, stop } from './lib/cluster-procs.mjs';
import { fmt, fmtInt } from './lib/format.mjs';
import { quantile } from './lib/hist.mjs';
import { machine, programVersion } from './lib/machine.mjs';
import { placement, waitQuiet } from './lib/placement.mjs';
import { processCpuSeconds, runQueueWaitSeconds } from './lib/proc-cpu.mjs';
import { publish } from './lib/results.mjs';
import * as report from './report/cluster.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = benchArgs({
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
});
const scenarios = list(args.scenarios);
const relayScenarios = scenarios.filter((s) => s !== 'failover');
const ROUNDS = Number(args.rounds);
const PACED_RATE = Number(args['paced-rate']);
const PHASE = { warmupMs: Number(args['warmup-ms']), measureMs: Number(args['measure-ms']) };

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
      rate: r.rate,
      p50: quantile(r.hist, 0.5),
      p99: quantile(r.hist, 0.99),
      max: r.maxMs,
      serverUs,
      redisUs,
      totalUs: serverUs + redisUs,
      cmds: Object.values(calls).reduce((a, b) => a + b, 0),
      calls,
      waitMsPerS: (r.wait * 1000) / r.seconds,
      genCores: r.genCores,
      others: r.others,
      disturbed: r.disturbed,
      leftOutS: r.leftOutS,
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

// ---- main -------------------------------------------------------------------------------

async function main() {
  const began = performance.now();
  const m = machine({ redis: programVersion('redis-server').match(/v=(\S+)/)?.[1] ?? '?' });
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
  const config = {
    relayScenarios,
    rounds: ROUNDS,
    pacedRate: PACED_RATE,
    window: Number(args.window),
    phase: PHASE,
    placement: { name: place.name, pinned: place.pinned },
    failoverSettleMs: SETTLE_MS,
  };
  publish('cluster', { name: 'cluster', machine: m, config, results, failover: fo }, report, { json: args.json, noWrite: args['no-write'] });
  console.log(`total ${fmt((performance.now() - began) / 1000, 0)} s`);
}

runMain(main);
