#!/usr/bin/env node
/**
 * Signaling relay benchmark (issue 2). Not a test: it prints figures and rewrites the
 * "## Signaling (issue 2)" section of BENCHMARKS.md. Bounded in time (< 5 minutes); every
 * child process is killed on exit, on failure and on SIGINT/SIGTERM.
 *
 *   npm run bench:signaling                                   # build, then the full run (~3-4 min)
 *   node bench/signaling.mjs --rounds 1 --no-write --skip-idle  # quick look, dist/ must be built
 *   node bench/signaling.mjs --rounds 1 --skip-idle --skip-paced --no-write --cpu-prof /tmp/prof
 *       # + a CPU profile of each server's measured seconds; summarize with
 *       #   node bench/lib/profile-summary.mjs /tmp/prof/ours.cpuprofile
 *   other options: --servers ours,bare,peerjs (also: ours-nocoalesce, ours@/other/build/dist)
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
import { execFileSync } from 'node:child_process';
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { count, newHist, quantile } from './lib/hist.mjs';
import { machine, writeSection } from './lib/report.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const SERVER_CHILD = join(here, 'lib', 'server-child.mjs');
const LOAD_WORKER = join(here, 'lib', 'load-worker.mjs');

const { values: args } = parseArgs({
  options: {
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
    placement: { type: 'string', default: 'pinned' },
    'cpu-prof': { type: 'string' },
    'no-write': { type: 'boolean', default: false },
  },
});

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
  servers: args.servers.split(',').filter(Boolean),
  // pinned: server process on CPU 0, load workers on the other CPUs (taskset).
  // shared: no affinity, everything competes for every CPU.
  placement: args.placement,
};
const TIME_BUDGET_MS = 290_000; // watchdog: the whole run, npm's build step aside
/** A measured slice during which other processes used more than this many cores is left out. */
const FOREIGN_LIMIT_CORES = 0.25;
const SLICE_MS = 500;
/** A phase measures for at most this many times its nominal duration to collect clean slices. */
const MAX_STRETCH = 2;
/** Before each round, wait up to this long for other processes to leave the CPUs alone. */
const QUIET_WAIT_MS = 2_000;
/** A round (one run of each server) starts only if, as long as the last one, it ends before this. */
const ROUNDS_DEADLINE_MS = 270_000;
const NCPU = os.cpus().length;

// ---- child process bookkeeping ----------------------------------------------------------

const children = new Set();

function killAll() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping children`);
    killAll();
    process.exit(130);
  });
}
const watchdog = setTimeout(() => {
  console.error(`benchmark exceeded its time budget (${TIME_BUDGET_MS / 1000} s); stopping`);
  killAll();
  process.exit(3);
}, TIME_BUDGET_MS);
watchdog.unref();

function spawnChild(file, argv, { execArgv = [], cpus } = {}) {
  const child = fork(file, argv, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd: root });
  children.add(child);
  child.on('exit', () => children.delete(child));
  if (cpus !== undefined && CONFIG.placement === 'pinned' && NCPU > 1) {
    try {
      execFileSync('taskset', ['-a', '-cp', cpus, String(child.pid)], { stdio: 'ignore' });
    } catch {
      // No taskset: run unpinned (the report states the placement actually used).
      CONFIG.placement = 'shared (taskset failed)';
    }
  }
  return child;
}

/** Resolves with the next IPC message of `child` that satisfies `pred`. */
function nextMessage(child, pred, timeoutMs, label) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (m?.type === 'fatal') return done(new Error(`${label}: child failed: ${m.error}`));
      if (pred(m)) done(null, m);
    };
    const onExit = (code, sig) => done(new Error(`${label}: child exited (${code ?? sig}) before answering`));
    const timer = setTimeout(() => done(new Error(`${label}: no answer within ${timeoutMs} ms`)), timeoutMs);
    function done(err, m) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(m);
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function stopChild(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      child.send({ cmd: 'exit' });
    } catch {
      child.kill('SIGKILL');
    }
  });
}

const serverCpus = '0';
const loadCpus = NCPU > 1 ? `1-${NCPU - 1}` : '0';

async function startServer(kind, { gc = false } = {}) {
  const execArgv = [];
  if (gc) execArgv.push('--expose-gc');
  const child = spawnChild(SERVER_CHILD, [kind], { execArgv, cpus: serverCpus });
  const ready = await nextMessage(child, (m) => m?.type === 'ready', 15_000, `${kind} server start`);
  return { child, port: ready.port };
}

async function usage(server, gc = false) {
  const answer = nextMessage(server.child, (m) => m?.type === 'usage', 10_000, 'server usage');
  server.child.send({ cmd: 'usage', gc });
  return answer;
}

async function startWorkers(n) {
  const workers = [];
  for (let i = 0; i < n; i++) workers.push(spawnChild(LOAD_WORKER, [], { cpus: loadCpus }));
  await Promise.all(workers.map((w, i) => nextMessage(w, (m) => m?.type === 'ready', 15_000, `worker ${i} start`)));
  return workers;
}

/** Machine-wide CPU busy fraction between two /proc/stat samples. */
function cpuTimes() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = line[3] + (line[4] ?? 0);
    const total = line.reduce((a, b) => a + b, 0);
    return { idle, total };
  } catch {
    return null;
  }
}
const busyBetween = (a, b) => (a && b ? 1 - (b.idle - a.idle) / (b.total - a.total) : NaN);

/** Waits (up to maxMs) until the machine is nearly idle between rounds; other jobs may share it. */
async function waitQuiet(maxMs) {
  const until = performance.now() + maxMs;
  let cores = NaN;
  do {
    const a = cpuTimes();
    await sleep(400);
    cores = busyBetween(a, cpuTimes()) * NCPU;
    if (!(cores > 0.15)) return { ok: true, cores };
  } while (performance.now() < until);
  return { ok: false, cores };
}

function split(total, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

// ---- relay rounds -----------------------------------------------------------------------

/** One simultaneous reading of every worker's counters, the server's usage and the machine's CPU. */
async function snapshot(server, workers) {
  const slices = workers.map((w, i) => nextMessage(w, (m) => m?.type === 'slice', 10_000, `worker ${i} slice`));
  const use = usage(server);
  const cpu = cpuTimes();
  for (const w of workers) w.send({ cmd: 'slice' });
  return { slices: await Promise.all(slices), usage: await use, cpu };
}

/**
 * Starts a load phase, warms up, then measures in slices of SLICE_MS. A slice during which
 * other processes (not the server, not the load workers) used more than FOREIGN_LIMIT_CORES
 * is left out; the phase runs until it has `cleanMs` of clean slices or `maxMs` have passed
 * (then every slice counts and the phase is marked as disturbed).
 */
async function measurePhase(server, workers, startMsg, warmupMs, cleanMs, maxMs, profileFile) {
  for (const [i, w] of workers.entries()) w.send(typeof startMsg === 'function' ? startMsg(i) : startMsg);
  await sleep(warmupMs);
  if (profileFile) {
    const started = nextMessage(server.child, (m) => m?.type === 'profile-started', 10_000, 'profile start');
    server.child.send({ cmd: 'profile-start' });
    await started;
  }
  let prev = await snapshot(server, workers);
  let errors = prev.slices.reduce((n, x) => n + x.errors, 0);
  let seqErrors = prev.slices.reduce((n, x) => n + x.seqErrors, 0);
  const unexpected = prev.slices.flatMap((x) => x.unexpected);
  const slices = [];
  const began = performance.now();
  let clean = 0;
  while (clean < cleanMs && performance.now() - began < maxMs) {
    await sleep(SLICE_MS);
    const cur = await snapshot(server, workers);
    const wallS = (cur.usage.wallMs - prev.usage.wallMs) / 1000;
    const serverCpuS = (cur.usage.cpuUs - prev.usage.cpuUs) / 1e6;
    const loadCpuS = cur.slices.reduce((n, x) => n + x.cpuUs / 1e6, 0);
    const machineBusy = busyBetween(prev.cpu, cur.cpu);
    const slice = {
      wallS,
      serverCpuS,
      loadCpuS,
      machineBusy,
      foreignCores: machineBusy * NCPU - (serverCpuS + loadCpuS) / wallS,
      rate: cur.slices.reduce((n, x) => n + (x.received / x.ms) * 1000, 0),
      skipped: cur.slices.reduce((n, x) => n + x.skipped, 0),
      hists: cur.slices.map((x) => x.hist),
    };
    slice.clean = !(slice.foreignCores > FOREIGN_LIMIT_CORES);
    if (slice.clean) clean += wallS * 1000;
    slices.push(slice);
    errors += cur.slices.reduce((n, x) => n + x.errors, 0);
    seqErrors += cur.slices.reduce((n, x) => n + x.seqErrors, 0);
    unexpected.push(...cur.slices.flatMap((x) => x.unexpected));
    prev = cur;
  }
  if (profileFile) {
    const stopped = nextMessage(server.child, (m) => m?.type === 'profile-stopped', 30_000, 'profile stop');
    server.child.send({ cmd: 'profile-stop', file: profileFile });
    const answer = await stopped;
    console.log(answer.file ? `cpu profile of the measured seconds: ${answer.file}` : `cpu profile failed: ${answer.error}`);
  }
  await Promise.all(workers.map((w, i) => {
    const answer = nextMessage(w, (m) => m?.type === 'stopped', 10_000, `worker ${i} stop`);
    w.send({ cmd: 'stop' });
    return answer;
  }));
  const disturbed = clean < cleanMs;
  const used = disturbed ? slices : slices.filter((x) => x.clean);
  const hist = newHist();
  for (const x of used) for (const sparse of x.hists) for (let i = 0; i < sparse.length; i += 2) hist[sparse[i]] += sparse[i + 1];
  const sum = (f) => used.reduce((n, x) => n + f(x), 0);
  const wallS = sum((x) => x.wallS);
  const rate = sum((x) => x.rate * x.wallS) / wallS;
  const serverCpuS = sum((x) => x.serverCpuS);
  const all = slices.reduce((n, x) => n + x.wallS, 0);
  return {
    rate,
    p50: quantile(hist, 0.5),
    p99: quantile(hist, 0.99),
    samples: count(hist),
    serverCpu: serverCpuS / wallS,
    cpuUsPerMsg: (serverCpuS * 1e6) / (rate * wallS),
    loadCpu: sum((x) => x.loadCpuS) / wallS,
    machineBusy: sum((x) => x.machineBusy * x.wallS) / wallS,
    foreignCores: sum((x) => x.foreignCores * x.wallS) / wallS,
    measuredS: wallS,
    leftOutS: disturbed ? 0 : all - wallS,
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
        w.send({ cmd: 'pairs', kind, port: server.port, pairs: perWorker[i], tag: `r${round}w${i}` });
        return answer;
      }),
    );
    const frameBytes = connected[0].frameBytes;
    const saturated = await measurePhase(
      server,
      workers,
      { cmd: 'start', mode: 'window', window: CONFIG.window },
      CONFIG.warmupMs,
      CONFIG.measureMs,
      CONFIG.measureMs * MAX_STRETCH,
      profileFile,
    );
    let paced = null;
    if (!args['skip-paced']) {
      await sleep(300); // let the window phase drain
      const rates = split(CONFIG.pacedRate, CONFIG.workers);
      paced = await measurePhase(server, workers, (i) => ({ cmd: 'start', mode: 'paced', rate: rates[i] }), 1000, CONFIG.pacedMs, CONFIG.pacedMs * MAX_STRETCH);
    }
    return { kind, round, frameBytes, saturated, paced };
  } finally {
    await Promise.all(workers.map(stopChild));
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
    await Promise.all(workers.map(stopChild));
    await stopChild(server.child);
  }
}

// ---- reporting --------------------------------------------------------------------------

const NAMES = { ours: 'rallypoint (ours)', 'ours-nocoalesce': 'rallypoint without write coalescing', bare: 'bare ws relay', peerjs: 'PeerJS server 1.0.2' };
const nameOf = (k) => NAMES[k] ?? (k.startsWith('ours@') ? `rallypoint, build ${k.slice(5)}` : k);
const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
const pct = (n) => (Number.isFinite(n) ? `${(n * 100).toFixed(0)} %` : 'n/a');

function medianRound(rounds) {
  const sorted = [...rounds].sort((a, b) => a.saturated.rate - b.saturated.rate);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function buildReport(results, idle, m) {
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
  const cpuMed = Object.fromEntries(
    CONFIG.servers.map((k) => [k, quiet[k].length ? medianBy(quiet[k], (r) => r.saturated.cpuUsPerMsg).saturated.cpuUsPerMsg : NaN]),
  );
  const paced = !args['skip-paced'];
  lines.push('## Signaling (issue 2)');
  lines.push('');
  lines.push('Command: `npm run bench:signaling` (builds, then runs `node bench/signaling.mjs`; the script rewrites this section).');
  lines.push('');
  lines.push(`Machine: ${m.cpuModel}, ${m.cores} cores, ${fmt(m.ramGiB, 0)} GiB RAM, Node ${m.node}, ${m.os}. Run: ${m.date}.`);
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
  lines.push(
    '| server | relayed msg/s | p50 ms | p99 ms | server CPU | server CPU µs/msg | rounds, msg/s |' + (paced ? ` p50 / p99 ms at ${fmtInt(CONFIG.pacedRate)} msg/s |` : ''),
  );
  lines.push('|---|---:|---:|---:|---:|---:|---|' + (paced ? '---:|' : ''));
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
      `per round ${r.map((x) => `${pct(x.ratio)}${x.disturbed ? '*' : ''}`).join(', ')}; ` +
      `median of the ${q.length ? 'undisturbed pairs' : 'pairs'} ${pct(medianBy(pool, (x) => x.ratio).ratio)}`
    );
  };
  if (med.ours && med.bare) {
    lines.push(
      `- **ours / bare: ${pct(thr('ours', 'bare'))} of the throughput** (median rounds; target >= 90 %). Paired with the bare round next to it: ${pairedText('ours', 'bare')}. ` +
        `CPU efficiency (bare µs/msg ÷ ours µs/msg, medians): ${pct(eff('ours', 'bare'))}.`,
    );
  }
  if (med.ours && med.peerjs) {
    lines.push(
      `- **ours / PeerJS: ${pct(thr('ours', 'peerjs'))} of the throughput** (${pairedText('ours', 'peerjs')}); CPU efficiency ${pct(eff('ours', 'peerjs'))}.`,
    );
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
  return lines.join('\n');
}

function medianBy(items, f) {
  const sorted = [...items].sort((a, b) => f(a) - f(b));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

// ---- main -------------------------------------------------------------------------------

async function main() {
  const began = performance.now();
  const m = machine();
  console.log(`signaling benchmark: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}; placement ${CONFIG.placement}`);
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
    for (const kind of CONFIG.servers) {
      const quiet = await waitQuiet(QUIET_WAIT_MS);
      if (!quiet.ok) console.log(`(other processes still use ${fmt(quiet.cores, 2)} cores after ${QUIET_WAIT_MS / 1000} s; measuring anyway)`);
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
  const section = buildReport(results, idle, m);
  console.log(`\n${section}`);
  if (!args['no-write']) console.log(`written to ${writeSection(root, /^## Signaling \(issue 2\)[ \t]*$/m, section)}`);
  console.log(`total ${fmt((performance.now() - began) / 1000, 0)} s`);
}

main().then(
  () => {
    killAll();
    process.exit(0);
  },
  (err) => {
    console.error(err?.stack ?? err);
    killAll();
    process.exit(1);
  },
);
