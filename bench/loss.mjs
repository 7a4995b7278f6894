/**
 * `npm run bench:loss`: one-way latency of 30 Hz game-state messages on the peer
 * library's `unreliable` channel under random packet loss, over three paths:
 *
 *   direct     the two peers on one switch (host candidates)
 *   turn       through the embedded TURN server of `rallypoint serve`, relay forced
 *              (`rtcConfig: { iceTransportPolicy: 'relay' }`)
 *   websocket  the WebSocket relay fallback: all UDP dropped in both peers' namespaces
 *              (nftables), so ICE cannot connect and the library falls back; TCP to the
 *              signaling server stays
 *
 * Topology (network namespaces built here, removed on exit and on SIGINT):
 *
 *   hub: bridge br0 10.213.X.1 - `rallypoint serve` (signaling + embedded TURN) on .1
 *    |-- a: eth0 .2  sender   (werift peer process, bench/lib/loss-peer.mjs)
 *    |-- b: eth0 .3  receiver (idem)
 *
 * The receiver only listens (it never sends on a channel) and both peers keep the default
 * `fallback` (5 s): the data channel liveness check must keep the path of a peer that only
 * listens. The "path changes / rebuilds" column counts both sides' `path-change` events and
 * connection rebuilds from the moment the expected path is reached to the end of the cell.
 *
 * Loss: nftables `numgen random` drops N % of ALL IP packets in the input and output hooks
 * of `a` and of `b` (a lossy access link at each player), added once the pair is connected
 * and removed after the cell: UDP for direct/turn, the TCP connections to the signaling
 * server for websocket. Cells are interleaved: for each round, loss level outer, path
 * inner, a fresh pair of processes per cell. The processes run from a copy of dist/ made at
 * the start (other jobs may rebuild dist/ meanwhile), under `chrt -f 20` where allowed.
 * Measures into test-artifacts/bench/loss.json (or --json FILE), then prints the markdown
 * tables of BENCHMARKS.md's "Loss: unreliable channel vs WebSocket fallback" rendered from it
 * (bench/report/loss.mjs; the reading around them is written by hand).
 *
 * Options: --rounds N (3) --seconds S (18) --losses 0,2,5 --paths direct,turn,websocket
 *          --hz 30 --size 150 --json FILE
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { benchArgs, list } from './lib/args.mjs';
import { sleep } from './lib/children.mjs';
import { fmtMs } from './lib/format.mjs';
import { machine, packageVersion } from './lib/machine.mjs';
import { listNamespaces, NetLab, netnsUnavailable, realtimePrefix } from './lib/netns.mjs';
import { cpuPressureUs } from './lib/proc-cpu.mjs';
import { saveResults } from './lib/results.mjs';
import { quantile } from './lib/stats.mjs';
import * as report from './report/loss.mjs';
import { TCP_COUNTERS } from './report/loss.mjs';

const fmt = (v) => fmtMs(v, '-');
const DIST = fileURLToPath(new URL('../dist', import.meta.url));
const NODE_MODULES = fileURLToPath(new URL('../node_modules', import.meta.url));
const PEER = fileURLToPath(new URL('./lib/loss-peer.mjs', import.meta.url));

const args = benchArgs({
  rounds: { type: 'string', default: '3' },
  seconds: { type: 'string', default: '18' },
  losses: { type: 'string', default: '0,2,5' },
  paths: { type: 'string', default: 'direct,turn,websocket' },
  hz: { type: 'string', default: '30' },
  size: { type: 'string', default: '150' },
});
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
const LOSSES = list(args.losses).map(Number);
const PATHS = list(args.paths);
const HZ = Number(args.hz);
const SIZE = Number(args.size);
/** After the last message: time for stragglers (TCP retransmissions back off 200, 400, 800 ms...). */
const SETTLE_MS = 3_000;
const EXPECTED_PATH = { direct: 'direct', turn: 'relay', websocket: 'websocket' };

/** The dist/ copy the processes of this run use (see snapshotDist). */
let rtDist = DIST;

const log = (...a) => console.error(`[bench:loss ${new Date().toISOString().slice(11, 19)}]`, ...a);

/** A child process speaking JSON lines. */
class LineProc {
  #queue = [];
  #waiters = [];
  #error = null;
  stderr = '';
  constructor(name, child) {
    this.name = name;
    this.child = child;
    child.stderr.on('data', (d) => {
      this.stderr += d.toString();
      if (this.stderr.length > 20_000) this.stderr = this.stderr.slice(-10_000);
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        msg = { event: 'text', line };
      }
      if (msg.event === 'error') return this.#fail(new Error(`${name}: ${msg.message}`));
      const i = this.#waiters.findIndex((w) => w.event === msg.event);
      if (i >= 0) this.#waiters.splice(i, 1)[0].resolve(msg);
      else this.#queue.push(msg);
    });
    this.closed = new Promise((resolve) =>
      child.once('close', (code, signal) => {
        this.#fail(new Error(`${name} exited (${code ?? signal}): ${this.stderr.trim().slice(-2000)}`));
        resolve(code);
      }),
    );
  }
  #fail(err) {
    this.#error ??= err;
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }
  next(event, timeoutMs = 60_000) {
    const i = this.#queue.findIndex((m) => m.event === event);
    if (i >= 0) return Promise.resolve(this.#queue.splice(i, 1)[0]);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const w = {
        event,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`${this.name}: no "${event}" within ${timeoutMs} ms; stderr: ${this.stderr.trim().slice(-1000)}`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }
  request(cmd, event, timeoutMs) {
    const answer = this.next(event, timeoutMs);
    this.child.stdin.write(`${JSON.stringify(cmd)}\n`);
    return answer;
  }
  /** Ends stdin (the peers exit on it), or sends `signal`; SIGKILL after 5 s. */
  async stop(signal) {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (signal) this.child.kill(signal);
    else this.child.stdin.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.closed;
    clearTimeout(t);
  }
}

/** The machine, as the tables' first line gives it. */
const lossMachine = () => {
  const m = machine({ werift: packageVersion('werift') });
  return { nproc: m.cores, cpu: m.cpuModel, node: m.node, werift: m.werift, kernel: m.kernel };
};

/**
 * A copy of dist/ for this run: other jobs may rebuild dist/ while the benchmark runs, and
 * every cell starts new processes. The copy gets a package.json (ESM) and node_modules.
 */
function snapshotDist() {
  const dir = mkdtempSync(join(tmpdir(), 'rp-bench-loss-'));
  cpSync(DIST, join(dir, 'dist'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'rallypoint-bench-loss-snapshot', private: true, type: 'module' }));
  symlinkSync(NODE_MODULES, join(dir, 'node_modules'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  process.on('exit', remove);
  return { dir, dist: join(dir, 'dist'), remove };
}

function gitRevision() {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', cwd: fileURLToPath(new URL('..', import.meta.url)) }).stdout?.trim() || 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'peer', 'signaling', 'turn'], { encoding: 'utf8', cwd: fileURLToPath(new URL('..', import.meta.url)) }).stdout?.trim();
  return dirty ? `${head} + uncommitted changes in peer/, signaling/ or turn/` : head;
}

async function startServe(hub, host, cidr, rt, dist) {
  const CLI = join(dist, 'signaling/cli/main.js');
  const cmd = rt.length ? rt[0] : process.execPath;
  const argv = [...rt.slice(1), ...(rt.length ? [process.execPath] : []), CLI, 'serve', '--port', '0', '--host', host, '--turn-port', '0', '--turn-allow', cidr, '--log-level', 'warn'];
  const proc = new LineProc('serve', hub.spawn(cmd, argv, { killSignal: 'SIGTERM' }));
  const first = await proc.next('text', 20_000);
  const m = /\(signaling (ws:\/\/[^\s)]+)\)/.exec(first.line);
  if (!m) throw new Error(`unexpected start line: ${first.line}`);
  const second = await proc.next('text', 20_000);
  if (!/TURN listening/.test(second.line)) throw new Error(`unexpected TURN line: ${second.line}`);
  return { proc, wsUrl: m[1], turnLine: second.line };
}

function startPeer(ns, rt, options) {
  options = { ...options, dist: join(rtDist, 'peer/node.js') };
  const cmd = rt.length ? rt[0] : process.execPath;
  const argv = [...rt.slice(1), ...(rt.length ? [process.execPath] : []), PEER, JSON.stringify(options)];
  return new LineProc(`${options.role}@${ns.name}`, ns.spawn(cmd, argv));
}

async function waitPath(peers, expected, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = [];
  while (Date.now() < deadline) {
    last = await Promise.all(peers.map((p) => p.request({ cmd: 'status' }, 'status', 10_000)));
    if (last.every((s) => s.path === expected)) return last;
    await sleep(250);
  }
  throw new Error(`path not ${expected} within ${timeoutMs} ms: ${last.map((s) => s.path).join(', ')}`);
}

/** Kernel TCP counters of a namespace (its own /proc/net/{snmp,netstat}; nstat, no history file). */
async function tcpCounters(nss) {
  const sum = Object.fromEntries(TCP_COUNTERS.map((k) => [k, 0]));
  for (const ns of nss) {
    const { stdout } = await ns.exec('nstat', ['-asz', ...TCP_COUNTERS]).catch(() => ({ stdout: '' }));
    for (const line of stdout.split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k in sum) sum[k] += Number(v);
    }
  }
  return sum;
}

/**
 * Other user processes running SCHED_FIFO/RR (other suites' latency tests use `chrt -f 20`
 * too): at the same priority a busy one is never preempted by ours, and it has starved a
 * peer of this benchmark for a minute. Kernel threads and `ours` (pids) are left out.
 */
function otherRealtime(ours) {
  const r = spawnSync('ps', ['-eo', 'pid=,cls=,pcpu=,args='], { encoding: 'utf8' });
  const found = [];
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(line);
    if (!m || (m[2] !== 'FF' && m[2] !== 'RR') || m[4].startsWith('[') || ours.has(Number(m[1]))) continue;
    found.push(`${m[1]} ${m[4].slice(0, 80)}`);
  }
  return found;
}

/** Waits (at most `maxMs`) until no other realtime process runs; returns what was still there. */
async function waitNoOtherRealtime(ours, maxMs) {
  const deadline = Date.now() + maxMs;
  let others = otherRealtime(ours);
  if (others.length) log(`waiting for other SCHED_FIFO processes to end: ${others.join('; ')}`);
  while (others.length && Date.now() < deadline) {
    await sleep(1000);
    others = otherRealtime(ours);
  }
  return others;
}

const pairText = (sp) => (sp ? `${sp.local.type} ${sp.local.address}:${sp.local.port} -> ${sp.remote.type} ${sp.remote.address}:${sp.remote.port}` : 'no pair');

async function runCell(ctx, round, loss, path) {
  const { a, b, wsUrl } = ctx;
  const room = `loss-r${round}-${loss}-${path}`;
  const blocks = path === 'websocket' ? await Promise.all([a, b].map((ns) => ns.addDrop({ percent: 100, match: 'meta l4proto udp' }))) : [];
  const peerOpts = { url: wsUrl, room, ...(path === 'turn' ? { rtcConfig: { iceTransportPolicy: 'relay' } } : {}) };
  const procs = [];
  let lossRules = [];
  try {
    const othersBefore = ctx.rt.length ? await waitNoOtherRealtime(ctx.ours, 120_000) : [];
    const t0 = performance.now();
    const receiver = startPeer(b, ctx.rt, { ...peerOpts, role: 'receiver' });
    procs.push(receiver);
    await receiver.next('joined', 20_000);
    const sender = startPeer(a, ctx.rt, { ...peerOpts, role: 'sender' });
    procs.push(sender);
    await sender.next('joined', 20_000);
    await Promise.all([sender.next('connected', 40_000), receiver.next('connected', 40_000)]);
    const statusBefore = await waitPath([sender, receiver], EXPECTED_PATH[path], 30_000);
    const setupMs = performance.now() - t0;
    // Warm-up without loss: 1 s of state, not measured.
    await sender.request({ cmd: 'stream', count: HZ, hz: HZ, size: SIZE, first: 0 }, 'sent', 30_000);
    await sleep(500);
    await receiver.request({ cmd: 'report' }, 'report');

    lossRules = await Promise.all([a, b].map((ns) => ns.addDrop({ percent: loss })));
    const tcp0 = await tcpCounters([a, b, ctx.hub]);
    const psi0 = cpuPressureUs();
    const w0 = performance.now();
    const count = Math.round(HZ * SECONDS);
    const sent = await sender.request({ cmd: 'stream', count, hz: HZ, size: SIZE, first: 1_000_000 }, 'sent', SECONDS * 1000 + 60_000);
    await sleep(SETTLE_MS);
    const wallUs = (performance.now() - w0) * 1000;
    const cpuWait = (cpuPressureUs() - psi0) / wallUs;
    const tcp1 = await tcpCounters([a, b, ctx.hub]);
    const ours = new Set([...ctx.ours, ...procs.map((p) => p.child.pid)]);
    const othersAfter = ctx.rt.length ? otherRealtime(ours) : [];
    const counters = await Promise.all(lossRules.map((r) => r.counters()));
    await Promise.all(lossRules.map((r) => r.remove()));
    lossRules = [];
    const report = await receiver.request({ cmd: 'report' }, 'report');
    const statusAfter = await Promise.all([sender, receiver].map((p) => p.request({ cmd: 'status' }, 'status', 10_000)));

    let seen = 0;
    let dropped = 0;
    for (const c of counters)
      for (const hook of ['input', 'output']) {
        seen += c.seen[hook] ?? 0;
        dropped += c.dropped[hook] ?? 0;
      }
    const measured = report.seqs.map((s, i) => [s, report.latencies[i]]).filter(([s]) => s >= 1_000_000);
    const unique = new Set(measured.map(([s]) => s));
    const pathChanged = statusAfter.some((s, i) => s.path !== statusBefore[i].path || s.pathChanges.length !== statusBefore[i].pathChanges.length);
    // Both sides, from the expected path being reached to the end of the cell (warm-up included).
    const pathChanges = statusAfter.reduce((n, s, i) => n + s.pathChanges.length - statusBefore[i].pathChanges.length, 0);
    const rebuilds = statusAfter.reduce((n, s, i) => n + (s.generation ?? 0) - (statusBefore[i].generation ?? 0), 0);
    return {
      round,
      loss,
      path,
      sent: sent.sent,
      droppedBySender: sent.droppedBySender,
      senderLate: sent.late,
      delivered: unique.size,
      duplicates: measured.length - unique.size,
      latencies: measured.map(([, l]) => l),
      packets: { seen, dropped },
      tcp: Object.fromEntries(TCP_COUNTERS.map((k) => [k, tcp1[k] - tcp0[k]])),
      setupMs: Math.round(setupMs),
      cpuWait,
      pairs: statusBefore.map((s) => pairText(s.selectedPair)),
      pathsAfter: statusAfter.map((s) => s.path),
      pathChanged,
      pathChanges,
      rebuilds,
      otherRealtime: [...othersBefore, ...othersAfter],
    };
  } finally {
    await Promise.all(lossRules.map((r) => r.remove().catch(() => undefined)));
    await Promise.all(procs.map((p) => p.stop()));
    await Promise.all(blocks.map((r) => r.remove().catch(() => undefined)));
  }
}

async function main() {
  const why = netnsUnavailable();
  if (why) {
    console.error(`bench:loss needs network namespaces: ${why}`);
    process.exit(1);
  }
  const info = {
    ...lossMachine(),
    started: `${new Date().toISOString().slice(0, 19)}Z`,
    load: loadavg()
      .map((l) => l.toFixed(1))
      .join(' / '),
  };
  const rt = realtimePrefix();
  info.rt = rt.length > 0;
  info.revision = gitRevision();
  const snapshot = snapshotDist();
  rtDist = snapshot.dist;
  const startedAt = performance.now();
  const lab = NetLab.create();
  const cells = [];
  try {
    const [hub, a, b] = await Promise.all([lab.namespace('hub'), lab.namespace('a'), lab.namespace('b')]);
    const sw = await lab.switch(hub);
    const aAddr = await sw.attach(a);
    const bAddr = await sw.attach(b);
    const serve = await startServe(hub, sw.gateway, sw.subnet.cidr, rt, snapshot.dist);
    log(`lab ${lab.id}: hub ${sw.gateway} (${serve.wsUrl}; ${serve.turnLine}), a ${aAddr}, b ${bAddr}`);
    const ctx = { a, b, hub, wsUrl: serve.wsUrl, rt, ours: new Set([serve.proc.child.pid]) };
    for (let round = 1; round <= ROUNDS; round++) {
      for (const loss of LOSSES) {
        for (const path of PATHS) {
          try {
            const cell = await runCell(ctx, round, loss, path);
            const s = [...cell.latencies].sort((x, y) => x - y);
            log(
              `round ${round} ${loss} % ${path}: ${cell.delivered}/${cell.sent} p50 ${fmt(quantile(s, 0.5))} p99 ${fmt(quantile(s, 0.99))} max ${fmt(s.at(-1) ?? NaN)} ms; dropped ${cell.packets.dropped}/${cell.packets.seen} packets; setup ${cell.setupMs} ms; ${cell.pairs[0]}; cpu wait ${Math.round(cell.cpuWait * 100)} %; tcp ${Object.values(cell.tcp).join('/')}${cell.otherRealtime.length ? `; OTHER SCHED_FIFO PROCESSES: ${cell.otherRealtime.join('; ')}` : ''}${cell.pathChanged ? `; PATH CHANGED ${cell.pathChanges}x, ${cell.rebuilds} rebuild(s): ${cell.pathsAfter}` : ''}`,
            );
            cells.push(cell);
          } catch (err) {
            log(`round ${round} ${loss} % ${path}: FAILED ${err.stack ?? err}`);
            cells.push({ round, loss, path, error: String(err.message ?? err) });
          }
        }
      }
    }
    await serve.proc.stop('SIGTERM');
  } finally {
    await lab.destroy();
    const left = (await listNamespaces()).filter((n) => n.startsWith(`${lab.id}-`));
    if (left.length) log(`namespaces left: ${left.join(', ')}`);
    snapshot.remove();
  }
  info.durationS = Math.round((performance.now() - startedAt) / 1000);
  const config = { rounds: ROUNDS, seconds: SECONDS, hz: HZ, size: SIZE, losses: LOSSES, paths: PATHS };
  const results = { name: 'loss', info, config, cells, rows: report.summarize(cells, config) };
  log(`results: ${saveResults('loss', results, args.json)}`);
  console.log(report.render(results).section);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
