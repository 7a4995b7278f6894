#!/usr/bin/env node
/**
 * Signaling relay benchmark. Not a test: it measures into
 * test-artifacts/bench/signaling.json (or --json FILE), then renders the "## Signaling
 *" section of BENCHMARKS.md and its summary rows from that file
 * (bench/report/signaling.mjs; `node bench/render.mjs signaling` renders again). Bounded in time (< 5 minutes); every
 * child process is killed on exit, on failure and on SIGINT/SIGTERM.
 *
 *   npm run bench:signaling                                   # build, then the full run (~3-4 min)
 *   node bench/signaling.mjs --rounds 1 --no-write --skip-idle  # quick look, dist/ must be built
 *   node bench/signaling.mjs --rounds 1 --skip-idle --skip-paced --no-write --cpu-prof /tmp/prof
 *       # + a CPU profile of each server's measured seconds; summarize with
 *       #   node bench/lib/profile-summary.mjs /tmp/prof/ours.cpuprofile
 *   other options: --servers ours,bare,peerjs (also: ours-nocoalesce, ours@/other/build/dist)
 *                  --alternate (reverse the servers' order every other round)
 *                  --frames signal|relay (relay: `relay` frames, the data fallback's, instead of
 *                  signals; rallypoint servers only)
 *                  --pairs 100 --workers 4 --window 8
 *                  --warmup-ms --measure-ms --paced-rate --paced-ms --idle 10000
 *                  --idle-workers 4 --placement pinned|shared
 *
 * 1. Relay throughput and latency, for three servers each in its own child process,
 *    interleaved over several rounds (ours, bare, peerjs, ours, ...):
 *      ours   - rallypoint's listenSignaling(), full validation, limits raised out of the way
 *      bare   - a bare `ws` relay: JSON.parse, Map lookup, stamp `from`, stringify, send
 *      peerjs - the PeerJS server (`peer` 1.0.2), concurrent limit raised
 *    Load: N sender/receiver pairs spread over several forked worker processes; each sender
 *    keeps a fixed window of candidate-sized signals in flight (closed loop: saturation with
 *    bounded in-flight), then a paced phase offers a fixed rate to compare latency below
 *    saturation. Latency = receive time - send time stamped in the signal data (same process).
 *    Measured in 500 ms slices; slices during which other processes on the machine took CPU
 *    are left out (see measurePhase).
 * 2. RSS per idle connection: server RSS (after GC) before and after 10,000 clients joined.
 */
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, list } from './lib/args.mjs';
import { ask, forkChild, nextMessage, runMain, sleep, stopChild, watchdog } from './lib/children.mjs';
import { fmt, fmtInt, pct } from './lib/format.mjs';
import { count, mergeSparse, newHist, quantile } from './lib/hist.mjs';
import { machine } from './lib/machine.mjs';
import { placement, waitQuiet } from './lib/placement.mjs';
import { busyBetween, machineTicks } from './lib/proc-cpu.mjs';
import { publish } from './lib/results.mjs';
import { MAX_STRETCH, measureSlices, sumOf } from './lib/slices.mjs';
import * as report from './report/signaling.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const SERVER_CHILD = join(here, 'lib', 'server-child.mjs');
const LOAD_WORKER = join(here, 'lib', 'load-worker.mjs');

const args = benchArgs({
  rounds: { type: 'string', default: '5' },
  pairs: { type: 'string', default: '100' },
  workers: { type: 'string', default: '4' },
  window: { type: 'string', default: '8' },
  'warmup-ms': { type: 'string', default: '1500' },
  'measure-ms': { type: 'string', default: '3000' },
  'paced-rate': { type: 'string', default: '20000' },
  'paced-ms': { type: 'string', default: '2000' },
  idle: { type: 'string', default: '10000' },
  'idle-workers': { type: 'string', default: '4' },
  'skip-idle': { type: 'boolean', default: false },
  'skip-paced': { type: 'boolean', default: false },
  servers: { type: 'string', default: 'ours,bare,peerjs' },
  frames: { type: 'string', default: 'signal' },
  alternate: { type: 'boolean', default: false },
  placement: { type: 'string', default: 'pinned' },
  'cpu-prof': { type: 'string' },
});

// pinned: server process on CPU 0, load workers on the other CPUs (taskset).
// shared: no affinity, everything competes for every CPU.
const place = placement(args.placement);
const CONFIG = {
  rounds: Number(args.rounds),
  pairs: Number(args.pairs),
  workers: Number(args.workers),
  window: Number(args.window),
  warmupMs: Number(args['warmup-ms']),
  measureMs: Number(args['measure-ms']),
  pacedRate: Number(args['paced-rate']),
  pacedMs: Number(args['paced-ms']),
  idle: Number(args.idle),
  idleWorkers: Number(args['idle-workers']),
  servers: list(args.servers),
  skipPaced: args['skip-paced'],
  frames: args.frames,
};
const TIME_BUDGET_MS = 290_000; // watchdog: the whole run, npm's build step aside
/** Before each round, wait up to this long for other processes to leave the CPUs alone. */
const QUIET_WAIT_MS = 2_000;
/** A round (one run of each server) starts only if, as long as the last one, it ends before this. */
const ROUNDS_DEADLINE_MS = 270_000;
const NCPU = os.cpus().length;

watchdog(TIME_BUDGET_MS);

function spawnChild(file, argv, { execArgv = [], cpus } = {}) {
  const child = forkChild(file, argv, { execArgv });
  place.pin([child.pid], cpus);
  return child;
}

async function startServer(kind, { gc = false } = {}) {
  const execArgv = [];
  if (gc) execArgv.push('--expose-gc');
  const child = spawnChild(SERVER_CHILD, [kind], { execArgv, cpus: place.serverCpus });
  const ready = await nextMessage(child, (m) => m?.type === 'ready', 15_000, `${kind} server start`);
  return { child, port: ready.port };
}

const usage = (server, gc = false) => ask(server.child, { cmd: 'usage', gc }, 'usage', 10_000, 'server usage');

async function startWorkers(n) {
  const workers = [];
  for (let i = 0; i < n; i++) workers.push(spawnChild(LOAD_WORKER, [], { cpus: place.loadCpus }));
  await Promise.all(workers.map((w, i) => nextMessage(w, (m) => m?.type === 'ready', 15_000, `worker ${i} start`)));
  return workers;
}

function split(total, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

// ---- relay rounds -----------------------------------------------------------------------

/** One simultaneous reading of every worker's counters, the server's usage and the machine's CPU. */
async function snapshot(server, workers) {
  const slices = workers.map((w, i) => nextMessage(w, (m) => m?.type === 'slice', 10_000, `worker ${i} slice`));
  const use = usage(server);
  const cpu = machineTicks();
  for (const w of workers) w.send({ cmd: 'slice' });
  return { slices: await Promise.all(slices), usage: await use, cpu };
}

/**
 * Starts a load phase, warms up, then measures in slices (bench/lib/slices.mjs): a slice
 * during which other processes (not the server, not the load workers) used more than
 * FOREIGN_LIMIT_CORES is left out.
 */
async function measurePhase(server, workers, startMsg, warmupMs, cleanMs, maxMs, profileFile) {
  for (const [i, w] of workers.entries()) w.send(typeof startMsg === 'function' ? startMsg(i) : startMsg);
  await sleep(warmupMs);
  if (profileFile) await ask(server.child, { cmd: 'profile-start' }, 'profile-started', 10_000, 'profile start');
  const m = await measureSlices({
    snap: () => snapshot(server, workers),
    cleanMs,
    maxMs,
    diff(prev, cur) {
      const seconds = (cur.usage.wallMs - prev.usage.wallMs) / 1000;
      const serverCpuS = (cur.usage.cpuUs - prev.usage.cpuUs) / 1e6;
      const loadCpuS = cur.slices.reduce((n, x) => n + x.cpuUs / 1e6, 0);
      const machineBusy = busyBetween(prev.cpu, cur.cpu);
      return {
        seconds,
        serverCpuS,
        loadCpuS,
        machineBusy,
        others: machineBusy * NCPU - (serverCpuS + loadCpuS) / seconds,
        rate: cur.slices.reduce((n, x) => n + (x.received / x.ms) * 1000, 0),
        skipped: cur.slices.reduce((n, x) => n + x.skipped, 0),
        hists: cur.slices.map((x) => x.hist),
        errors: cur.slices.reduce((n, x) => n + x.errors, 0),
        seqErrors: cur.slices.reduce((n, x) => n + x.seqErrors, 0),
        unexpected: cur.slices.flatMap((x) => x.unexpected),
      };
    },
  });
  if (profileFile) {
    const answer = await ask(server.child, { cmd: 'profile-stop', file: profileFile }, 'profile-stopped', 30_000, 'profile stop');
    console.log(answer.file ? `cpu profile of the measured seconds: ${answer.file}` : `cpu profile failed: ${answer.error}`);
  }
  await Promise.all(workers.map((w, i) => ask(w, { cmd: 'stop' }, 'stopped', 10_000, `worker ${i} stop`)));
  const { used, slices, disturbed } = m;
  // Errors count over every slice, the first reading's included.
  const errors = sumOf(slices, (x) => x.errors) + m.first.slices.reduce((n, x) => n + x.errors, 0);
  const seqErrors = sumOf(slices, (x) => x.seqErrors) + m.first.slices.reduce((n, x) => n + x.seqErrors, 0);
  const unexpected = [...m.first.slices.flatMap((x) => x.unexpected), ...slices.flatMap((x) => x.unexpected)];
  const hist = newHist();
  for (const x of used) for (const sparse of x.hists) mergeSparse(hist, sparse);
  const sum = (f) => sumOf(used, f);
  const wallS = m.seconds;
  const rate = sum((x) => x.rate * x.seconds) / wallS;
  const serverCpuS = sum((x) => x.serverCpuS);
  return {
    rate,
    p50: quantile(hist, 0.5),
    p99: quantile(hist, 0.99),
    samples: count(hist),
    serverCpu: serverCpuS / wallS,
    cpuUsPerMsg: (serverCpuS * 1e6) / (rate * wallS),
    loadCpu: sum((x) => x.loadCpuS) / wallS,
    machineBusy: sum((x) => x.machineBusy * x.seconds) / wallS,
    foreignCores: sum((x) => x.others * x.seconds) / wallS,
    measuredS: wallS,
    leftOutS: m.leftOutS,
    disturbed,
    skipped: sum((x) => x.skipped),
    errors,
    seqErrors,
    unexpected,
  };
}

async function relayRound(kind, round) {
  const profileFile = args['cpu-prof'] && round === 0 ? join(args['cpu-prof'], `${kind}.cpuprofile`) : undefined;
  if (profileFile) mkdirSync(args['cpu-prof'], { recursive: true });
  const server = await startServer(kind);
  const workers = await startWorkers(CONFIG.workers);
  try {
    const perWorker = split(CONFIG.pairs, CONFIG.workers);
    const connected = await Promise.all(
      workers.map((w, i) => {
        const answer = nextMessage(w, (m) => m?.type === 'connected', 30_000, `worker ${i} connect`);
        w.send({ cmd: 'pairs', kind, port: server.port, pairs: perWorker[i], tag: `r${round}w${i}`, frames: CONFIG.frames });
        return answer;
      }),
    );
    const frameBytes = connected[0].frameBytes;
    const saturated = await measurePhase(server, workers, { cmd: 'start', mode: 'window', window: CONFIG.window }, CONFIG.warmupMs, CONFIG.measureMs, CONFIG.measureMs * MAX_STRETCH, profileFile);
    let paced = null;
    if (!args['skip-paced']) {
      await sleep(300); // let the window phase drain
      const rates = split(CONFIG.pacedRate, CONFIG.workers);
      paced = await measurePhase(server, workers, (i) => ({ cmd: 'start', mode: 'paced', rate: rates[i] }), 1000, CONFIG.pacedMs, CONFIG.pacedMs * MAX_STRETCH);
    }
    return { kind, round, frameBytes, saturated, paced };
  } finally {
    await Promise.all(workers.map((w) => stopChild(w)));
    await stopChild(server.child);
  }
}

// ---- idle connections -------------------------------------------------------------------

async function idleRound(kind) {
  const server = await startServer(kind, { gc: true });
  const workers = await startWorkers(CONFIG.idleWorkers);
  try {
    await sleep(500);
    const before = await usage(server, true);
    const started = performance.now();
    const perWorker = split(CONFIG.idle, CONFIG.idleWorkers);
    const connected = await Promise.all(
      workers.map((w, i) => {
        const answer = nextMessage(w, (m) => m?.type === 'connected', 90_000, `worker ${i} idle connect`);
        w.send({ cmd: 'idle', kind, port: server.port, count: perWorker[i], tag: `idle${i}` });
        return answer;
      }),
    );
    const connectSeconds = (performance.now() - started) / 1000;
    const sockets = connected.reduce((n, c) => n + c.sockets, 0);
    await sleep(1000);
    const after = await usage(server, true);
    return {
      kind,
      sockets,
      serverConnections: after.connections,
      connectSeconds,
      rssBefore: before.rss,
      rssAfter: after.rss,
      kbPerConn: (after.rss - before.rss) / sockets / 1024,
      heapKbPerConn: (after.heapUsed - before.heapUsed) / sockets / 1024,
    };
  } finally {
    await Promise.all(workers.map((w) => stopChild(w)));
    await stopChild(server.child);
  }
}

// ---- main -------------------------------------------------------------------------------

async function main() {
  const began = performance.now();
  const m = machine();
  console.log(`signaling benchmark: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}; placement ${place.name}`);
  if (!existsSync(join(root, 'dist', 'signaling', 'server', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` (or `npm run bench:signaling`)');
  // Idle connections first: their cost is bounded, the relay rounds then use the time left.
  const idle = [];
  if (!args['skip-idle']) {
    for (const kind of CONFIG.servers) {
      const r = await idleRound(kind);
      idle.push(r);
      console.log(
        `idle   ${kind.padEnd(6)} ${fmtInt(r.serverConnections ?? r.sockets)} connections  RSS ${fmt(r.rssBefore / 2 ** 20)} -> ${fmt(r.rssAfter / 2 ** 20)} MB  ` +
          `${fmt(r.kbPerConn, 2)} KB/conn (heap ${fmt(r.heapKbPerConn, 2)} KB/conn)  connected in ${fmt(r.connectSeconds, 1)} s`,
      );
    }
  }
  const results = [];
  let lastGroupMs = 0;
  for (let round = 0; round < CONFIG.rounds; round++) {
    const groupStarted = performance.now();
    if (round > 0 && groupStarted - began + lastGroupMs > ROUNDS_DEADLINE_MS) {
      console.log(`time budget: stopping after ${round} rounds (machine busy with other jobs)`);
      CONFIG.roundsDone = round;
      break;
    }
    CONFIG.roundsDone = round + 1;
    // --alternate: the servers' order reversed every other round, so that neither build
    // always runs first (the first of a round met other conditions, in before/after runs).
    for (const kind of args.alternate && round % 2 ? [...CONFIG.servers].reverse() : CONFIG.servers) {
      await waitQuiet(QUIET_WAIT_MS);
      const r = await relayRound(kind, round);
      results.push(r);
      const s = r.saturated;
      console.log(
        `round ${round + 1} ${kind.padEnd(6)} ${fmtInt(s.rate).padStart(7)} msg/s  p50 ${fmt(s.p50, 2)} ms  p99 ${fmt(s.p99, 2)} ms  ` +
          `server cpu ${pct(s.serverCpu)} ${fmt(s.cpuUsPerMsg, 1)} µs/msg  load ${fmt(s.loadCpu, 2)} cores  other ${fmt(s.foreignCores, 2)} cores` +
          `  ${fmt(s.measuredS, 1)} s measured${s.leftOutS > 0.05 ? `, ${fmt(s.leftOutS, 1)} s left out` : ''}${s.disturbed ? ' DISTURBED' : ''}` +
          (r.paced ? `  | paced ${fmtInt(r.paced.rate)} msg/s p50 ${fmt(r.paced.p50, 2)} p99 ${fmt(r.paced.p99, 2)} ms${r.paced.disturbed ? ' DISTURBED' : ''}` : '') +
          (s.errors || s.seqErrors ? `  ERRORS ${s.errors} seq ${s.seqErrors} ${s.unexpected.join(' | ')}` : ''),
      );
    }
    lastGroupMs = performance.now() - groupStarted;
  }
  CONFIG.placement = place.name;
  publish('signaling', { name: 'signaling', machine: m, config: CONFIG, results, idle }, report, { json: args.json, noWrite: args['no-write'] });
  console.log(`total ${fmt((performance.now() - began) / 1000, 0)} s`);
}

runMain(main);
