#!/usr/bin/env node
/**
 * TURN relay benchmark (issue 4): the embedded TURN server (`rallypoint/turn`) against coturn
 * (Debian /usr/bin/turnserver) under the same load, interleaved in one run. Not a test: it
 * prints figures and rewrites the "## TURN relay (issue 4)" section of BENCHMARKS.md.
 * Bounded in time; every process it starts (coturn included) is killed on exit, failure,
 * SIGINT/SIGTERM.
 *
 *   npm run bench:turn                              # build, then the full run (~2-3 min)
 *   node bench/turn.mjs --rounds 1 --no-write       # quick look, dist/ must be built
 *   node bench/turn.mjs --rounds 1 --servers rallypoint --methods channel --no-write --cpu-prof /tmp/prof
 *       # + a CPU profile of the embedded server's process (node bench/lib/profile-summary.mjs FILE)
 *   other options: --workers 3 --allocs 8 --window 4 --warmup-ms --measure-ms --paced-rate --paced-ms
 *                  --servers rallypoint,coturn --methods channel,send --placement pinned|shared
 *
 * Per round and server: a fresh server process pinned to CPU 0; load processes
 * (bench/lib/turn-load.mjs) and coturn's C echo peer (turnutils_peer) on the other CPU(s).
 * Each load process opens allocations (REST credentials, one per allocation) and binds a
 * channel to the echo peer; every datagram goes client -> TURN -> echo peer -> TURN -> client.
 * 1. paced: a fixed offered rate below saturation, for the round trip latency;
 * 2. window: each allocation keeps `window` datagrams in flight (closed loop), for throughput.
 * Then the same with Send indications instead of ChannelData (method 'send').
 */
import { execFileSync, fork, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import dgram from 'node:dgram';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { count, newHist, quantile } from './lib/hist.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const SERVER_CHILD = join(here, 'lib', 'turn-server-child.mjs');
const LOAD = join(here, 'lib', 'turn-load.mjs');
const TURNSERVER = '/usr/bin/turnserver';
const ECHO = '/usr/bin/turnutils_peer';
const SECRET = `bench-turn-${Math.random().toString(36).slice(2)}-secret`;

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    workers: { type: 'string', default: '3' },
    allocs: { type: 'string', default: '8' },
    window: { type: 'string', default: '4' },
    'warmup-ms': { type: 'string', default: '1000' },
    'measure-ms': { type: 'string', default: '3000' },
    'paced-rate': { type: 'string', default: '5000' },
    'paced-ms': { type: 'string', default: '2000' },
    servers: { type: 'string', default: 'rallypoint,coturn,rallypoint-public' },
    methods: { type: 'string', default: 'channel,send' },
    placement: { type: 'string', default: 'pinned' },
    'cpu-prof': { type: 'string' },
    'no-write': { type: 'boolean', default: false },
  },
});
const CONFIG = {
  rounds: Number(args.rounds),
  workers: Number(args.workers),
  allocs: Number(args.allocs),
  window: Number(args.window),
  warmupMs: Number(args['warmup-ms']),
  measureMs: Number(args['measure-ms']),
  pacedRate: Number(args['paced-rate']),
  pacedMs: Number(args['paced-ms']),
  servers: args.servers.split(',').filter(Boolean),
  methods: args.methods.split(',').filter(Boolean),
  placement: args.placement,
};
const TIME_BUDGET_MS = 600_000;
/** A round starts only if, as long as the last one, it ends before this. */
const ROUNDS_DEADLINE_MS = 480_000;
/** Before each run, wait up to this long for other processes to leave the CPUs alone. */
const QUIET_WAIT_MS = 10_000;
const FOREIGN_LIMIT_CORES = 0.25;
const SLICE_MS = 500;
const MAX_STRETCH = 2;
const NCPU = os.cpus().length;
const HZ = 100;
const NAMES = {
  rallypoint: 'rallypoint (embedded)',
  'rallypoint-public': 'rallypoint, peer judged as public (deny list walked)',
  coturn: 'coturn 4.6.1',
};

// ---- processes ------------------------------------------------------------------------------

const children = new Set();
const tmpDirs = new Set();
function killAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  tmpDirs.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping children`);
    killAll();
    process.exit(130);
  });
}
setTimeout(() => {
  console.error(`benchmark exceeded its time budget (${TIME_BUDGET_MS / 1000} s); stopping`);
  killAll();
  process.exit(3);
}, TIME_BUDGET_MS).unref();

const serverCpus = '0';
const loadCpus = NCPU > 1 ? `1-${NCPU - 1}` : '0';
const pinned = () => CONFIG.placement === 'pinned' && NCPU > 1;

function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
function pin(pid, cpus) {
  if (!pinned()) return;
  try {
    execFileSync('taskset', ['-a', '-cp', cpus, String(pid)], { stdio: 'ignore' });
  } catch {
    CONFIG.placement = 'shared (taskset failed)';
  }
}
/** A native program, started under taskset so every thread it creates inherits the CPUs. */
function spawnNative(file, argv, cpus, out) {
  const [cmd, a] = pinned() ? ['taskset', ['-c', cpus, file, ...argv]] : [file, argv];
  const child = track(spawn(cmd, a, { stdio: ['ignore', out ?? 'ignore', out ?? 'ignore'] }));
  return child;
}
function forkNode(file, argv, cpus, execArgv = []) {
  const child = track(fork(file, argv, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd: root }));
  pin(child.pid, cpus);
  return child;
}

function nextMessage(child, pred, timeoutMs, label) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (m?.type === 'fatal') return done(new Error(`${label}: child failed: ${m.error}`));
      if (pred(m)) done(null, m);
    };
    const onExit = (code, sig) => done(new Error(`${label}: child exited (${code ?? sig})`));
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
function stopChild(child, graceful) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (graceful) child.send({ cmd: 'exit' });
    else child.kill('SIGKILL');
  });
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

function procTicks(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime, all threads, clock ticks
  } catch {
    return NaN;
  }
}
function cpuTimes() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: f[3] + (f[4] ?? 0), total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
}
async function waitQuiet(maxMs) {
  const until = performance.now() + maxMs;
  let cores;
  do {
    const a = cpuTimes();
    await sleep(400);
    const b = cpuTimes();
    cores = (1 - (b.idle - a.idle) / (b.total - a.total)) * NCPU;
    if (!(cores > 0.15)) return { ok: true, cores };
  } while (performance.now() < until);
  return { ok: false, cores };
}

// ---- servers --------------------------------------------------------------------------------

/** Starts a server: { kind, pid, port, usage(): {cpuUs, wallMs, packets?}, stop() }. */
async function startServer(kind, profileDir) {
  if (kind === 'rallypoint' || kind === 'rallypoint-public') {
    const execArgv = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
    const child = forkNode(SERVER_CHILD, [SECRET, kind === 'rallypoint' ? 'allow' : 'public'], serverCpus, execArgv);
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
      stop: () => stopChild(child, true),
    };
  }
  if (kind === 'coturn') {
    const dir = mkdtempSync(join(os.tmpdir(), 'rallypoint-bench-coturn-'));
    tmpDirs.add(dir);
    const port = await freePort();
    const conf = execFileSync(process.execPath, [
      join(root, 'dist', 'signaling', 'cli', 'main.js'), 'coturn-config', '--secret', SECRET,
      '--listening-ip', '127.0.0.1', '--listening-port', String(port), '--relay-ip', '127.0.0.1', '--allow', '127.0.0.0/8',
    ], { encoding: 'utf8' });
    if (!/^no-tls$/m.test(conf) || !/^no-dtls$/m.test(conf)) throw new Error('coturn-config output lacks no-tls/no-dtls');
    writeFileSync(join(dir, 'turnserver.conf'), conf, { mode: 0o600 });
    const child = spawnNative(TURNSERVER, [
      '-c', join(dir, 'turnserver.conf'), '--log-file=stdout', '--no-stdout-log', '--simple-log',
      `--pidfile=${join(dir, 'turnserver.pid')}`, `--userdb=${join(dir, 'turndb')}`,
    ], serverCpus);
    await waitStun(port, child, 'coturn');
    return {
      kind,
      pid: child.pid,
      port,
      async usage() {
        return { cpuUs: (procTicks(child.pid) / HZ) * 1e6 };
      },
      async stop() {
        await stopChild(child, false);
        rmSync(dir, { recursive: true, force: true });
        tmpDirs.delete(dir);
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
  for (let i = 0; i < CONFIG.workers; i++) workers.push(forkNode(LOAD, [], loadCpus));
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
  const cpu = cpuTimes();
  const othersTicks = others.reduce((n, pid) => n + procTicks(pid), 0);
  const self = process.cpuUsage();
  for (const w of workers) w.send({ cmd: 'slice' });
  return { at: performance.now(), slices: await Promise.all(slices), usage: await usage, cpu, othersTicks, self: self.user + self.system };
}

/**
 * Runs one load phase: warm-up, then 500 ms slices until `cleanMs` of slices in which other
 * processes used at most FOREIGN_LIMIT_CORES (or MAX_STRETCH x cleanMs passed: then every
 * slice counts and the phase is marked disturbed).
 */
async function phase(server, workers, others, startMsg, warmupMs, cleanMs) {
  for (const w of workers) w.send(startMsg);
  await sleep(warmupMs);
  let prev = await snapshot(server, workers, others);
  const slices = [];
  const began = performance.now();
  let clean = 0;
  while (clean < cleanMs && performance.now() - began < cleanMs * MAX_STRETCH) {
    await sleep(SLICE_MS);
    const cur = await snapshot(server, workers, others);
    const wallS = (cur.at - prev.at) / 1000;
    const serverCpuS = (cur.usage.cpuUs - prev.usage.cpuUs) / 1e6;
    const loadCpuS = cur.slices.reduce((n, x) => n + x.cpuUs / 1e6, 0) + (cur.othersTicks - prev.othersTicks) / HZ + (cur.self - prev.self) / 1e6;
    const busy = (1 - (cur.cpu.idle - prev.cpu.idle) / (cur.cpu.total - prev.cpu.total)) * NCPU;
    const x = {
      wallS,
      serverCpuS,
      loadCpuS,
      foreignCores: busy - (serverCpuS + loadCpuS) / wallS,
      roundTrips: cur.slices.reduce((n, s) => n + s.received, 0),
      sent: cur.slices.reduce((n, s) => n + s.sent, 0),
      lost: cur.slices.reduce((n, s) => n + s.lost, 0),
      serverPackets: (cur.usage.packets ?? NaN) - (prev.usage.packets ?? NaN),
      hists: cur.slices.map((s) => s.hist),
    };
    x.clean = !(x.foreignCores > FOREIGN_LIMIT_CORES);
    if (x.clean) clean += wallS * 1000;
    slices.push(x);
    prev = cur;
  }
  await Promise.all(workers.map((w, i) => {
    const a = nextMessage(w, (m) => m?.type === 'stopped', 10_000, `load ${i} stop`);
    w.send({ cmd: 'stop' });
    return a;
  }));
  await sleep(LOSS_SETTLE_MS);
  const disturbed = clean < cleanMs;
  const used = disturbed ? slices : slices.filter((x) => x.clean);
  const sum = (f) => used.reduce((n, x) => n + f(x), 0);
  const hist = newHist();
  for (const x of used) for (const sp of x.hists) for (let i = 0; i < sp.length; i += 2) hist[sp[i]] += sp[i + 1];
  const wallS = sum((x) => x.wallS);
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
    foreignCores: sum((x) => x.foreignCores * x.wallS) / wallS,
    measuredS: wallS,
    leftOutS: disturbed ? 0 : slices.reduce((n, x) => n + x.wallS, 0) - wallS,
    disturbed,
  };
}
const LOSS_SETTLE_MS = 200;

async function run(kind, method, round, echo) {
  const profileDir = args['cpu-prof'] && kind.startsWith('rallypoint') && round === 0 ? join(args['cpu-prof'], `${kind}-${method}`) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const quiet = await waitQuiet(QUIET_WAIT_MS);
  if (!quiet.ok) console.log(`(other processes use ${fmt(quiet.cores, 2)} cores; measuring anyway)`);
  const server = await startServer(kind, profileDir);
  let workers = [];
  try {
    workers = await startWorkers(server, echo.address, method);
    const others = [echo.pid];
    const paced = await phase(server, workers, others, { cmd: 'start', mode: 'paced', rate: CONFIG.pacedRate / CONFIG.workers }, 300, CONFIG.pacedMs);
    const saturated = await phase(server, workers, others, { cmd: 'start', mode: 'window', window: CONFIG.window }, CONFIG.warmupMs, CONFIG.measureMs);
    return { kind, method, round, paced, saturated };
  } finally {
    await Promise.all(workers.map((w) => stopChild(w, true)));
    await server.stop();
  }
}

// ---- report ---------------------------------------------------------------------------------

const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
const pct = (n) => (Number.isFinite(n) ? `${(n * 100).toFixed(0)} %` : 'n/a');
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

function machine() {
  const model = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? os.cpus()[0]?.model;
  let coturn = 'unknown';
  try {
    coturn = execFileSync(TURNSERVER, ['--version'], { encoding: 'utf8' }).trim().split('\n').pop();
  } catch (err) {
    coturn = String(err.stdout ?? '').trim().split('\n').pop() || 'unknown';
  }
  return {
    model, cores: NCPU, node: process.version, coturn, os: `${os.type()} ${os.release()}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

function report(results, m, seconds) {
  const L = [];
  const rounds = Math.max(...results.map((r) => r.round)) + 1;
  L.push('## TURN relay (issue 4)', '');
  L.push('Command: `npm run bench:turn` (builds, then runs `node bench/turn.mjs`; the script rewrites this section).', '');
  L.push(`Machine: ${m.model}, ${m.cores} cores (\`nproc\`), Node ${m.node}, coturn ${m.coturn} (Debian \`/usr/bin/turnserver\`), ${m.os}. Run: ${m.date}, ${fmt(seconds, 0)} s.`, '');
  L.push(
    `Setup: each server in a fresh process per run, on 127.0.0.1: the embedded TURN (\`TurnServer\` from \`dist/turn\`, REST credentials via \`restCredentialLookup\`, peers \`allow: ['127.0.0.0/8']\`, default quotas) ` +
      'and coturn started with the config `rallypoint coturn-config --secret S --listening-ip 127.0.0.1 --listening-port P --relay-ip 127.0.0.1 --allow 127.0.0.0/8` prints ' +
      '(use-auth-secret, no-tls, no-dtls, no-cli, fingerprint; coturn\'s default thread count). ' +
      `${CONFIG.workers} load processes (\`bench/lib/turn-load.mjs\`) open ${CONFIG.allocs} allocations each (${CONFIG.workers * CONFIG.allocs} in all, one REST credential and one UDP socket each, minted by \`mintTurnCredentials\`); ` +
      'each allocation binds a channel (ChannelBind) to one UDP echo peer (coturn\'s `turnutils_peer`, written in C, so the echo costs little) and sends ChannelData, as WebRTC stacks do; ' +
      `the "Send indications" rows use CreatePermission + Send indications instead (Data indications come back). Datagrams carry ${200} bytes of application data (its send time inside). ` +
      `Placement: ${pinned() ? 'the server process (all its threads) pinned to CPU 0, the load processes and the echo peer to the other CPU(s) (`taskset`)' : CONFIG.placement}. ` +
      `${rounds} rounds, interleaved (${CONFIG.servers.join(', ')}, ${CONFIG.servers.join(', ')}, ...), each method in its own runs. ` +
      '"peer judged as public": the embedded server without the allow list and with the default deny list minus 127.0.0.0/8, so the loopback echo peer goes through the same per-packet policy check as a public peer address does in production (the allow-list setup short-circuits it).',
    '',
  );
  L.push(
    'What is counted: a **round trip** is one datagram client -> TURN -> echo peer -> TURN -> client that came back; it is **2 relayed packets** ' +
      '(the server relayed one to the peer and one back to the client). "relayed packets/s" = 2 x round trips/s, at the clients. ' +
      'For the embedded server the server\'s own relay counters (packets to peers + to clients) agree (column "server count"). ' +
      `**window**: every allocation keeps ${CONFIG.window} datagrams in flight (closed loop, ${CONFIG.workers * CONFIG.allocs * CONFIG.window} in flight in all; a datagram not back within 1 s is counted lost and resent): ` +
      `saturation throughput; ${CONFIG.warmupMs / 1000} s warm-up, ${CONFIG.measureMs / 1000} s measured. ` +
      `**paced**: ${fmtInt(CONFIG.pacedRate)} round trips/s (${fmtInt(2 * CONFIG.pacedRate)} relayed packets/s) offered at a steady pace, ${CONFIG.pacedMs / 1000} s measured: latency below saturation. ` +
      '**server CPU**: user+system CPU time of the server process (all threads: `process.cpuUsage()` for the embedded one, `/proc/<pid>/stat` for coturn) over wall time (100 % = one core), and per relayed packet. ' +
      'Measured in 500 ms slices; slices during which processes other than ours used more than 0.25 cores are left out (a run that could not get enough quiet slices within twice its length counts them all and is marked *).',
    '',
  );
  for (const method of CONFIG.methods) {
    const rows = results.filter((r) => r.method === method);
    if (!rows.length) continue;
    L.push(`### ${method === 'channel' ? 'ChannelData' : 'Send indications'}`, '');
    L.push('| server | relayed packets/s (window) | round trips/s | p50 / p99 ms (window) | server CPU | server CPU µs/packet | packets/s per server core | limited by | server count packets/s | load CPU cores | lost | rounds, packets/s | p50 / p99 ms paced |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|');
    const med = {};
    for (const kind of CONFIG.servers) {
      const rs = rows.filter((r) => r.kind === kind);
      if (!rs.length) continue;
      const s = (f) => median(rs.map((r) => f(r.saturated)));
      const p = (f) => median(rs.map((r) => f(r.paced)));
      med[kind] = { pps: s((x) => x.packetsPerS), us: s((x) => x.cpuUsPerPacket), perCore: s((x) => x.packetsPerS / x.serverCpu), p50: p((x) => x.p50), p99: p((x) => x.p99) };
      const serverCpu = s((x) => x.serverCpu);
      const loadCpu = s((x) => x.loadCpu);
      const serverFull = serverCpu >= 0.95;
      const loadFull = loadCpu >= 0.95 * Math.max(1, NCPU - 1);
      const limit = serverFull && loadFull ? 'both CPUs full' : serverFull ? 'server (its CPU full)' : loadFull ? `load (its CPU full; server at ${pct(serverCpu)})` : 'neither (noise?)';
      L.push(
        `| ${NAMES[kind] ?? kind} | ${fmtInt(med[kind].pps)} | ${fmtInt(s((x) => x.roundTripsPerS))} | ${fmt(s((x) => x.p50), 2)} / ${fmt(s((x) => x.p99), 2)} | ` +
          `${pct(serverCpu)} | ${fmt(med[kind].us, 2)} | ${fmtInt(med[kind].perCore)} | ${limit} | ${kind.startsWith('rallypoint') ? fmtInt(s((x) => x.serverPacketsPerS)) : '-'} | ${fmt(loadCpu, 2)} | ` +
          `${rs.reduce((n, r) => n + r.saturated.lost + r.paced.lost, 0)} | ${rs.map((r) => `${fmtInt(r.saturated.packetsPerS)}${r.saturated.disturbed ? '*' : ''}`).join(', ')} | ` +
          `${fmt(med[kind].p50, 2)} / ${fmt(med[kind].p99, 2)} |`,
      );
    }
    L.push('');
    for (const ours of ['rallypoint', 'rallypoint-public']) {
      const a = med[ours];
      const b = med.coturn;
      if (!a || !b) continue;
      const pairs = [];
      for (let i = 0; i < rounds; i++) {
        const x = rows.find((r) => r.kind === ours && r.round === i);
        const y = rows.find((r) => r.kind === 'coturn' && r.round === i);
        if (x && y) pairs.push(x.saturated.packetsPerS / y.saturated.packetsPerS);
      }
      L.push(
        `- **${ours === 'rallypoint' ? 'embedded' : 'embedded, peer judged as public'} / coturn: ${pct(a.pps / b.pps)} of coturn's relayed packets/s** as measured (medians; target >= 50 %); per round: ${pairs.map(pct).join(', ')}. ` +
          `**Per server core** (packets/s ÷ server CPU; the fair figure when one side is not saturated): **${pct(a.perCore / b.perCore)}**. ` +
          `Server CPU per relayed packet: ${fmt(a.us, 2)} µs vs coturn ${fmt(b.us, 2)} µs (coturn ${fmt(a.us / b.us, 1)}x as efficient). ` +
          `Paced p50 / p99: ${fmt(a.p50, 2)} / ${fmt(a.p99, 2)} ms vs coturn ${fmt(b.p50, 2)} / ${fmt(b.p99, 2)} ms.`,
      );
    }
    L.push('');
  }
  const others = results.map((r) => r.saturated.foreignCores);
  L.push(`Other processes during the measured slices (median over runs, includes kernel network work not charged to any process): ${fmt(median(others), 2)} cores; left out ${fmt(results.reduce((n, r) => n + r.saturated.leftOutS + r.paced.leftOutS, 0), 1)} s in all.`, '');
  return L.join('\n');
}

function writeBenchmarks(section) {
  const file = join(root, 'BENCHMARKS.md');
  let text = readFileSync(file, 'utf8');
  const start = text.search(/^## TURN relay \(issue 4\)[ \t]*$/m);
  if (start === -1) {
    text = `${text.trimEnd()}\n\n${section.trimEnd()}\n`;
  } else {
    const after = text.slice(start).search(/\n## /);
    const rest = after === -1 ? '' : text.slice(start + after + 1);
    text = `${text.slice(0, start)}${section.trimEnd()}\n${rest ? `\n${rest}` : ''}`;
  }
  writeFileSync(file, text);
  return file;
}

// ---- main -----------------------------------------------------------------------------------

async function main() {
  const began = performance.now();
  const m = machine();
  console.log(`TURN benchmark: ${m.model}, ${m.cores} cores, Node ${m.node}, coturn ${m.coturn}; placement ${CONFIG.placement}`);
  if (!existsSync(join(root, 'dist', 'turn', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` (or `npm run bench:turn`)');
  for (const f of [TURNSERVER, ECHO]) if (CONFIG.servers.includes('coturn') || f === ECHO) if (!existsSync(f)) throw new Error(`${f} is missing (apt-get install coturn)`);
  const echoPort = await freePort();
  const echoChild = spawnNative(ECHO, ['-L', '127.0.0.1', '-p', String(echoPort)], loadCpus);
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
      for (const kind of CONFIG.servers) {
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
  const section = report(results, m, (performance.now() - began) / 1000);
  console.log(`\n${section}`);
  if (!args['no-write']) console.log(`written to ${writeBenchmarks(section)}`);
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
