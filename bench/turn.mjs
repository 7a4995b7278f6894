#!/usr/bin/env node
/**
 * TURN relay benchmark: the embedded TURN server (`rallypoint/turn`) against coturn
 * (Debian /usr/bin/turnserver) under the same load, interleaved in one run. Not a test: it
 * measures into test-artifacts/bench/turn.json (or --json FILE), then renders the "## TURN
 * relay" section of BENCHMARKS.md from it (bench/report/turn.mjs).
 * Bounded in time; every process it starts (coturn included) is killed on exit, failure,
 * SIGINT/SIGTERM.
 *
 *   npm run bench:turn                              # build, then the full run (~2-3 min)
 *   node bench/turn.mjs --rounds 1 --no-write       # quick look, dist/ must be built
 *   node bench/turn.mjs --rounds 1 --servers rallypoint --methods channel --no-write --cpu-prof /tmp/prof
 *       # + a CPU profile of the embedded server's process (node bench/lib/profile-summary.mjs FILE)
 *   other options: --workers 3 --allocs 8 --window 4 --warmup-ms --measure-ms --paced-rate --paced-ms
 *                  --servers rallypoint,coturn --methods channel,send --placement pinned|shared
 *                  (a server rallypoint@/other/build/dist runs another build's embedded server)
 *                  --alternate (reverse the servers' order every other round)
 *
 * Per round and server: a fresh server process pinned to CPU 0; load processes
 * (bench/lib/turn-load.mjs) and coturn's C echo peer (turnutils_peer) on the other CPU(s).
 * Each load process opens allocations (REST credentials, one per allocation) and binds a
 * channel to the echo peer; every datagram goes client -> TURN -> echo peer -> TURN -> client.
 * 1. paced: a fixed offered rate below saturation, for the round trip latency;
 * 2. window: each allocation keeps `window` datagrams in flight (closed loop), for throughput.
 * Then the same with Send indications instead of ChannelData (method 'send').
 */
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, list } from './lib/args.mjs';
import { ask, forkChild, nextMessage, runMain, sleep, spawnChild, stopChild, trackDir, untrackDir, watchdog } from './lib/children.mjs';
import { fmt, fmtInt, pct } from './lib/format.mjs';
import { count, mergeSparse, newHist, quantile } from './lib/hist.mjs';
import { machine, programVersion } from './lib/machine.mjs';
import { placement, waitQuiet } from './lib/placement.mjs';
import { busyBetween, machineTicks, processTicks, TICKS_PER_SECOND } from './lib/proc-cpu.mjs';
import { publish } from './lib/results.mjs';
import { measureSlices, sumOf } from './lib/slices.mjs';
import * as report from './report/turn.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const SERVER_CHILD = join(here, 'lib', 'turn-server-child.mjs');
const LOAD = join(here, 'lib', 'turn-load.mjs');
const TURNSERVER = '/usr/bin/turnserver';
const ECHO = '/usr/bin/turnutils_peer';
const SECRET = `bench-turn-${Math.random().toString(36).slice(2)}-secret`;

const args = benchArgs({
  rounds: { type: 'string', default: '3' },
  workers: { type: 'string', default: '3' },
  allocs: { type: 'string', default: '8' },
  window: { type: 'string', default: '4' },
  'warmup-ms': { type: 'string', default: '1000' },
  'measure-ms': { type: 'string', default: '3000' },
  'paced-rate': { type: 'string', default: '5000' },
  'paced-ms': { type: 'string', default: '2000' },
  servers: { type: 'string', default: 'rallypoint,coturn,rallypoint-public' },
  alternate: { type: 'boolean', default: false },
  methods: { type: 'string', default: 'channel,send' },
  placement: { type: 'string', default: 'pinned' },
  'cpu-prof': { type: 'string' },
});
const place = placement(args.placement);
const CONFIG = {
  rounds: Number(args.rounds),
  workers: Number(args.workers),
  allocs: Number(args.allocs),
  window: Number(args.window),
  warmupMs: Number(args['warmup-ms']),
  measureMs: Number(args['measure-ms']),
  pacedRate: Number(args['paced-rate']),
  pacedMs: Number(args['paced-ms']),
  servers: list(args.servers),
  methods: list(args.methods),
};
const TIME_BUDGET_MS = 600_000;
/** A round starts only if, as long as the last one, it ends before this. */
const ROUNDS_DEADLINE_MS = 480_000;
/** Before each run, wait up to this long for other processes to leave the CPUs alone. */
const QUIET_WAIT_MS = 10_000;
const NCPU = os.cpus().length;

// ---- processes ------------------------------------------------------------------------------

watchdog(TIME_BUDGET_MS);

/** A native program, started under taskset so every thread it creates inherits the CPUs. */
const spawnNative = (file, argv, cpus, out) => spawnChild(...place.command(file, argv, cpus), { out });
function forkNode(file, argv, cpus, execArgv = [], env) {
  const child = forkChild(file, argv, { execArgv, env });
  place.pin([child.pid], cpus);
  return child;
}

/** A port free for TCP and UDP on 127.0.0.1 (coturn listens on both); never 3478. */
async function freePort() {
  for (;;) {
    const srv = createServer();
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address();
    await new Promise((r) => srv.close(r));
    const sock = dgram.createSocket('udp4');
    const ok = await new Promise((resolve) => {
      sock.once('error', () => resolve(false));
      sock.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise((r) => sock.close(r));
    if (ok && port !== 3478) return port;
  }
}

/** Polls with STUN Binding requests until something answers on the port. */
async function waitStun(port, child, label) {
  const sock = dgram.createSocket('udp4');
  await new Promise((r) => sock.bind(0, '127.0.0.1', r));
  const req = Buffer.alloc(20);
  req.writeUInt16BE(0x0001, 0);
  req.writeUInt32BE(0x2112a442, 4);
  req.fill(7, 8);
  const got = new Promise((r) => sock.once('message', r));
  try {
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; ) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${label} exited (${child.exitCode ?? child.signalCode})`);
      sock.send(req, port, '127.0.0.1');
      if (await Promise.race([got.then(() => true), sleep(100).then(() => false)])) return;
    }
    throw new Error(`${label} did not answer STUN Binding within 15 s`);
  } finally {
    sock.close();
  }
}

// ---- servers --------------------------------------------------------------------------------

/** Starts a server: { kind, pid, port, usage(): {cpuUs, wallMs, packets?}, stop() }. */
async function startServer(kind, profileDir) {
  // rallypoint@/other/build/dist: the embedded server of another build (before/after comparisons).
  const [base, otherDist] = kind.split('@');
  if (base === 'rallypoint' || base === 'rallypoint-public') {
    const execArgv = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
    const env = otherDist ? { ...process.env, RALLYPOINT_TURN_DIST: join(otherDist, 'turn', 'index.js') } : undefined;
    const child = forkNode(SERVER_CHILD, [SECRET, base === 'rallypoint' ? 'allow' : 'public'], place.serverCpus, execArgv, env);
    const ready = await nextMessage(child, (m) => m?.type === 'ready', 15_000, 'rallypoint start');
    return {
      kind,
      pid: child.pid,
      port: ready.port,
      async usage() {
        const u = nextMessage(child, (m) => m?.type === 'usage', 10_000, 'rallypoint usage');
        child.send({ cmd: 'usage' });
        const m = await u;
        return { cpuUs: m.cpuUs, packets: m.packetsToPeer + m.packetsToClient, refusals: m.refusals };
      },
      stop: () => stopChild(child, { killAfterMs: 5000 }),
    };
  }
  if (kind === 'coturn') {
    const dir = mkdtempSync(join(os.tmpdir(), 'rallypoint-bench-coturn-'));
    trackDir(dir);
    const port = await freePort();
    const conf = execFileSync(
      process.execPath,
      [
        join(root, 'dist', 'signaling', 'cli', 'main.js'),
        'coturn-config',
        '--secret',
        SECRET,
        '--listening-ip',
        '127.0.0.1',
        '--listening-port',
        String(port),
        '--relay-ip',
        '127.0.0.1',
        '--allow',
        '127.0.0.0/8',
      ],
      { encoding: 'utf8' },
    );
    if (!/^no-tls$/m.test(conf) || !/^no-dtls$/m.test(conf)) throw new Error('coturn-config output lacks no-tls/no-dtls');
    writeFileSync(join(dir, 'turnserver.conf'), conf, { mode: 0o600 });
    const child = spawnNative(
      TURNSERVER,
      ['-c', join(dir, 'turnserver.conf'), '--log-file=stdout', '--no-stdout-log', '--simple-log', `--pidfile=${join(dir, 'turnserver.pid')}`, `--userdb=${join(dir, 'turndb')}`],
      place.serverCpus,
    );
    await waitStun(port, child, 'coturn');
    return {
      kind,
      pid: child.pid,
      port,
      async usage() {
        return { cpuUs: (processTicks(child.pid) / TICKS_PER_SECOND) * 1e6 };
      },
      async stop() {
        await stopChild(child, { graceful: false, killAfterMs: 5000 });
        untrackDir(dir);
      },
    };
  }
  throw new Error(`unknown server ${kind}`);
}

// ---- load -----------------------------------------------------------------------------------

let credSeq = 0;
/** REST credentials, as the signaling server mints them (turn/credentials.ts). */
async function mint(n) {
  const { mintTurnCredentials } = await import(new URL('../dist/turn/index.js', import.meta.url).href);
  return Array.from({ length: n }, () => mintTurnCredentials(`bench-${credSeq++}`, { secret: SECRET, ttl: 3600 }));
}

async function startWorkers(server, peer, method) {
  const workers = [];
  for (let i = 0; i < CONFIG.workers; i++) workers.push(forkNode(LOAD, [], place.loadCpus));
  await Promise.all(workers.map((w, i) => nextMessage(w, (m) => m?.type === 'ready', 15_000, `load ${i} start`)));
  await Promise.all(
    workers.map(async (w, i) => {
      const creds = await mint(CONFIG.allocs);
      const done = nextMessage(w, (m) => m?.type === 'setup', 30_000, `load ${i} setup`);
      w.send({ cmd: 'setup', server: { address: '127.0.0.1', port: server.port }, peer, creds, method });
      return done;
    }),
  );
  return workers;
}

async function snapshot(server, workers, others) {
  const slices = workers.map((w, i) => nextMessage(w, (m) => m?.type === 'slice', 10_000, `load ${i} slice`));
  const usage = server.usage();
  const cpu = machineTicks();
  const othersTicks = others.reduce((n, pid) => n + processTicks(pid), 0);
  const self = process.cpuUsage();
  for (const w of workers) w.send({ cmd: 'slice' });
  return { at: performance.now(), slices: await Promise.all(slices), usage: await usage, cpu, othersTicks, self: self.user + self.system };
}

/**
 * Runs one load phase: warm-up, then slices (bench/lib/slices.mjs) until `cleanMs` of slices
 * in which other processes used at most FOREIGN_LIMIT_CORES.
 */
async function phase(server, workers, others, startMsg, warmupMs, cleanMs) {
  for (const w of workers) w.send(startMsg);
  await sleep(warmupMs);
  const m = await measureSlices({
    snap: () => snapshot(server, workers, others),
    cleanMs,
    diff(prev, cur) {
      const seconds = (cur.at - prev.at) / 1000;
      const serverCpuS = (cur.usage.cpuUs - prev.usage.cpuUs) / 1e6;
      const loadCpuS = cur.slices.reduce((n, x) => n + x.cpuUs / 1e6, 0) + (cur.othersTicks - prev.othersTicks) / TICKS_PER_SECOND + (cur.self - prev.self) / 1e6;
      const busy = busyBetween(prev.cpu, cur.cpu) * NCPU;
      return {
        seconds,
        serverCpuS,
        loadCpuS,
        others: busy - (serverCpuS + loadCpuS) / seconds,
        roundTrips: cur.slices.reduce((n, s) => n + s.received, 0),
        sent: cur.slices.reduce((n, s) => n + s.sent, 0),
        lost: cur.slices.reduce((n, s) => n + s.lost, 0),
        serverPackets: (cur.usage.packets ?? NaN) - (prev.usage.packets ?? NaN),
        hists: cur.slices.map((s) => s.hist),
      };
    },
  });
  await Promise.all(workers.map((w, i) => ask(w, { cmd: 'stop' }, 'stopped', 10_000, `load ${i} stop`)));
  await sleep(LOSS_SETTLE_MS);
  const { used, disturbed } = m;
  const sum = (f) => sumOf(used, f);
  const hist = newHist();
  for (const x of used) for (const sp of x.hists) mergeSparse(hist, sp);
  const wallS = m.seconds;
  const roundTrips = sum((x) => x.roundTrips);
  const serverCpuS = sum((x) => x.serverCpuS);
  return {
    roundTripsPerS: roundTrips / wallS,
    packetsPerS: (2 * roundTrips) / wallS,
    serverPacketsPerS: sum((x) => x.serverPackets) / wallS,
    sentPerS: sum((x) => x.sent) / wallS,
    lost: sum((x) => x.lost),
    p50: quantile(hist, 0.5),
    p99: quantile(hist, 0.99),
    samples: count(hist),
    serverCpu: serverCpuS / wallS,
    cpuUsPerPacket: (serverCpuS * 1e6) / (2 * roundTrips),
    loadCpu: sum((x) => x.loadCpuS) / wallS,
    foreignCores: sum((x) => x.others * x.seconds) / wallS,
    measuredS: wallS,
    leftOutS: m.leftOutS,
    disturbed,
  };
}
const LOSS_SETTLE_MS = 200;

async function run(kind, method, round, echo) {
  const profileDir = args['cpu-prof'] && kind.startsWith('rallypoint') && round === 0 ? join(args['cpu-prof'], `${kind}-${method}`) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  await waitQuiet(QUIET_WAIT_MS);
  const server = await startServer(kind, profileDir);
  let workers = [];
  try {
    workers = await startWorkers(server, echo.address, method);
    const others = [echo.pid];
    const paced = await phase(server, workers, others, { cmd: 'start', mode: 'paced', rate: CONFIG.pacedRate / CONFIG.workers }, 300, CONFIG.pacedMs);
    const saturated = await phase(server, workers, others, { cmd: 'start', mode: 'window', window: CONFIG.window }, CONFIG.warmupMs, CONFIG.measureMs);
    return { kind, method, round, paced, saturated };
  } finally {
    await Promise.all(workers.map((w) => stopChild(w, { killAfterMs: 5000 })));
    await server.stop();
  }
}

// ---- main -----------------------------------------------------------------------------------

async function main() {
  const began = performance.now();
  const m = machine({ coturn: programVersion(TURNSERVER) });
  console.log(`TURN benchmark: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, coturn ${m.coturn}; placement ${place.name}`);
  if (!existsSync(join(root, 'dist', 'turn', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` (or `npm run bench:turn`)');
  for (const f of [TURNSERVER, ECHO]) if (CONFIG.servers.includes('coturn') || f === ECHO) if (!existsSync(f)) throw new Error(`${f} is missing (apt-get install coturn)`);
  const echoPort = await freePort();
  const echoChild = spawnNative(ECHO, ['-L', '127.0.0.1', '-p', String(echoPort)], place.loadCpus);
  await sleep(300);
  if (echoChild.exitCode !== null) throw new Error('turnutils_peer exited');
  const echo = { pid: echoChild.pid, address: { address: '127.0.0.1', port: echoPort } };
  const results = [];
  let lastRoundMs = 0;
  for (let round = 0; round < CONFIG.rounds; round++) {
    const roundStarted = performance.now();
    if (round > 0 && roundStarted - began + lastRoundMs > ROUNDS_DEADLINE_MS) {
      console.log(`time budget: stopping after ${round} rounds (machine busy with other jobs)`);
      break;
    }
    for (const method of CONFIG.methods) {
      // --alternate: the servers' order reversed every other round (before/after runs).
      for (const kind of args.alternate && round % 2 ? [...CONFIG.servers].reverse() : CONFIG.servers) {
        const r = await run(kind, method, round, echo);
        results.push(r);
        const s = r.saturated;
        const p = r.paced;
        console.log(
          `round ${round + 1} ${method.padEnd(7)} ${kind.padEnd(10)} ${fmtInt(s.packetsPerS).padStart(7)} pkt/s (${fmtInt(s.roundTripsPerS)} rt/s, server count ${fmtInt(s.serverPacketsPerS)})` +
            `  p50 ${fmt(s.p50, 2)} p99 ${fmt(s.p99, 2)} ms  server cpu ${pct(s.serverCpu)} ${fmt(s.cpuUsPerPacket, 2)} µs/pkt  load ${fmt(s.loadCpu, 2)}  other ${fmt(s.foreignCores, 2)}  lost ${s.lost}` +
            `${s.disturbed ? ' DISTURBED' : ''}  | paced ${fmtInt(p.roundTripsPerS)} rt/s p50 ${fmt(p.p50, 2)} p99 ${fmt(p.p99, 2)} ms cpu ${pct(p.serverCpu)} ${fmt(p.cpuUsPerPacket, 2)} µs/pkt${p.disturbed ? ' DISTURBED' : ''}`,
        );
      }
    }
    lastRoundMs = performance.now() - roundStarted;
  }
  Object.assign(CONFIG, { placement: place.name, pinned: place.pinned });
  publish('turn', { name: 'turn', machine: m, config: CONFIG, seconds: (performance.now() - began) / 1000, results }, report, { json: args.json, noWrite: args['no-write'] });
}

runMain(main);
