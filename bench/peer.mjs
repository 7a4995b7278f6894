/**
 * Peer library benchmark (`npm run bench:peer`): connection setup time, game-state latency
 * and bulk throughput of rallypoint rooms, side by side for
 *   Node <-> Node with werift, Node <-> Node with @roamhq/wrtc,
 *   Node (werift) <-> Chromium, Node (@roamhq/wrtc) <-> Chromium, Chromium <-> Chromium,
 * plus a plain-UDP latency baseline, on this machine only: the signaling service runs in this
 * process on 127.0.0.1; the peers connect through their host candidates (this machine's own
 * addresses). Prints a table and rewrites the "## Peer library (issue 3)" section of
 * BENCHMARKS.md (nothing else in the file).
 *
 * Every peer is its own process: a Node child (bench/lib/node-peer.mjs) or a Chromium page
 * in its own browser context (renderer process), running the same agent code
 * (bench/lib/peer-agent.mjs). Measurements are interleaved across the pairs (run 1 of every
 * pair, then run 2, ...) so that load from other jobs on the machine spreads over all pairs.
 *
 * Bounded: about 3.5 minutes; no new round starts after 280 s and a watchdog stops
 * everything at 330 s. Children, pages and the browser are killed on every exit path.
 *
 * Options: --quick (few runs, for trying the script), --no-write (do not touch BENCHMARKS.md),
 *          --pairs=werift,wrtc,werift-chromium,wrtc-chromium,chromium,udp
 */
import { fork } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuBetween, cpuSnapshot, descendants } from './lib/proc-cpu.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v ?? true];
  }),
);
const QUICK = Boolean(args.quick);

const CONFIG = {
  connectRuns: QUICK ? 4 : 20,
  connectWarmup: QUICK ? 1 : 2,
  rounds: QUICK ? 1 : 3,
  stateHz: 60,
  stateBytes: 200,
  stateSeconds: 4,
  bulkBytes: 16 * 1024,
  bulkSeconds: 3,
  /** A first, unmeasured transfer per direction and round (Chromium's first transfer on a
   *  fresh connection collapses for seconds; see the report). Its rate is reported apart. */
  bulkWarmupSeconds: 1,
  /** Stop starting rounds after this (the watchdog is the hard limit). */
  softDeadlineMs: 280_000,
  watchdogMs: 330_000,
  callTimeoutMs: 45_000,
};

const BENCH_HEADING = '## Peer library (issue 3)';

/** The flags of test/helpers/browser.ts (headless Debian Chromium as root, offline), plus
 *  no mDNS host candidates (werift cannot resolve `<uuid>.local`; NO_MDNS_ARG there) and no
 *  throttling of timers in pages that are not in front (several pages run at once here). */
const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

// ---- cleanup ----------------------------------------------------------------------------

const children = new Set();
let browser = null;
let signaling = null;

async function cleanup() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  children.clear();
  if (browser) {
    const b = browser;
    browser = null;
    await Promise.race([b.close().catch(() => {}), sleep(5_000)]);
  }
  if (signaling) {
    const s = signaling;
    signaling = null;
    await Promise.race([s.close({ timeoutMs: 1_000 }).catch(() => {}), sleep(2_000)]);
  }
  // Anything still below this process was started by it (e.g. a Chromium helper).
  for (const pid of descendants().filter((p) => p !== process.pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

let stopping = false;
function exitAfterCleanup(code) {
  if (stopping) return;
  stopping = true;
  cleanup().finally(() => process.exit(code));
}
process.on('SIGINT', () => exitAfterCleanup(130));
process.on('SIGTERM', () => exitAfterCleanup(143));

// ---- helpers ----------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
    }),
  ]);
}

function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, min: s[0] ?? NaN, p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s[s.length - 1] ?? NaN };
}

const median = (xs) => summary(xs).p50;
const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
const fmtMs = (n) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0)) : 'n/a');

// ---- peers ------------------------------------------------------------------------------

/** A Node peer: a child process running bench/lib/node-peer.mjs. */
async function startNodePeer(runtime, wsUrl, extraOptions) {
  const argv = extraOptions ? [runtime, wsUrl, JSON.stringify(extraOptions)] : [runtime, wsUrl];
  const child = fork(join(root, 'bench/lib/node-peer.mjs'), argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  const pending = new Map();
  let next = 0;
  let exited = null;
  child.on('message', (m) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(m.error));
    else p.resolve(m.result);
  });
  child.on('error', () => {}); // a send after the child died: its call rejects below
  child.on('exit', (code, signal) => {
    exited = `exited (${code ?? signal})`;
    children.delete(child);
    for (const p of pending.values()) p.reject(new Error(`node peer ${exited}`));
    pending.clear();
  });
  await withTimeout(
    new Promise((resolve, reject) => {
      child.once('message', (m) => (m.ready ? resolve() : reject(new Error('unexpected first message'))));
      child.once('exit', () => reject(new Error(`node peer ${exited}`)));
    }),
    15_000,
    `starting node peer (${runtime})`,
  );
  return {
    kind: runtime,
    kill: () => child.kill('SIGKILL'),
    call(method, ...a) {
      if (exited || !child.connected) return Promise.reject(new Error(`node peer ${exited ?? 'disconnected'}`));
      const id = next++;
      return withTimeout(
        new Promise((resolve, reject) => {
          pending.set(id, { resolve, reject });
          child.send({ id, method, args: a });
        }),
        CONFIG.callTimeoutMs,
        `${runtime}.${method}`,
      );
    },
  };
}

/** A Chromium peer: bench/lib/page.html in its own browser context. */
async function startPagePeer(origin, wsUrl) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${origin}/bench.html?ws=${encodeURIComponent(wsUrl)}`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 15_000 });
  const isolated = await page.evaluate(() => window.benchIsolated);
  return {
    kind: 'chromium',
    isolated,
    pageErrors,
    call(method, ...a) {
      return withTimeout(
        page.evaluate(([m, xs]) => window.bench[m](...xs), [method, a]),
        CONFIG.callTimeoutMs,
        `chromium.${method}`,
      );
    },
  };
}

// ---- the signaling service and the page files ---------------------------------------------

const PAGE_FILES = {
  '/bench.html': { path: join(root, 'bench/lib/page.html'), type: 'text/html; charset=utf-8' },
  '/peer-agent.mjs': { path: join(root, 'bench/lib/peer-agent.mjs'), type: 'text/javascript; charset=utf-8' },
  '/rallypoint.min.js': { path: join(root, 'dist/web/rallypoint.min.js'), type: 'text/javascript; charset=utf-8' },
};

function servePages(req, res) {
  const entry = PAGE_FILES[(req.url ?? '/').split('?')[0]];
  if (!entry || req.method !== 'GET') return void res.writeHead(404).end();
  res
    .writeHead(200, {
      'Content-Type': entry.type,
      'Cache-Control': 'no-store',
      // Cross-origin isolation: precise performance.now() in the page.
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
    })
    .end(readFileSync(entry.path));
}

// ---- measurements -----------------------------------------------------------------------

const PAIRS = [
  { key: 'werift', name: 'Node <-> Node, werift', a: 'werift', b: 'werift', sharedClock: true },
  { key: 'wrtc', name: 'Node <-> Node, @roamhq/wrtc', a: 'wrtc', b: 'wrtc', sharedClock: true },
  { key: 'werift-chromium', name: 'Node (werift) <-> Chromium', a: 'chromium', b: 'werift', sharedClock: false, bothWays: true },
  { key: 'wrtc-chromium', name: 'Node (@roamhq/wrtc) <-> Chromium', a: 'chromium', b: 'wrtc', sharedClock: false, bothWays: true },
  { key: 'chromium', name: 'Chromium <-> Chromium', a: 'chromium', b: 'chromium', sharedClock: false },
  // Latency only: the machine's own floor (two Node processes, plain UDP, no WebRTC).
  { key: 'udp', name: 'baseline: Node <-> Node, plain UDP (no WebRTC)', a: 'udp', b: 'udp', sharedClock: true, baseline: true },
];

const label = (kind) => ({ werift: 'Node (werift)', wrtc: 'Node (wrtc)', chromium: 'Chromium', udp: 'Node (UDP)' })[kind];

/** One connection-setup run: A waits in a fresh room, B joins; timed on B's clock. */
async function connectRun(pair, room) {
  const { A, B } = pair;
  try {
    await A.call('join', room);
    const r = await B.call('joinTimed', room);
    return r;
  } catch (err) {
    return { error: err.message.split('\n')[0] };
  } finally {
    await Promise.allSettled([A.call('leave'), B.call('leave')]);
  }
}

// ---- machine stalls ------------------------------------------------------------------------

const hr = () => Number(process.hrtime.bigint()) / 1e6;
let canary = null;

/** bench/lib/canary.mjs: a process that records when it did not get a CPU for > 3 ms. */
async function startCanary() {
  const child = fork(join(root, 'bench/lib/canary.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.on('error', () => {});
  child.on('exit', () => children.delete(child));
  const pending = new Map();
  let next = 0;
  await withTimeout(new Promise((resolve) => child.once('message', resolve)), 10_000, 'starting the canary');
  child.on('message', (m) => {
    pending.get(m.id)?.(m.stalls);
    pending.delete(m.id);
  });
  return {
    stalls(from, to) {
      if (!child.connected) return Promise.resolve(null);
      const id = next++;
      return withTimeout(new Promise((resolve) => (pending.set(id, resolve), child.send({ id, from, to }))), 10_000, 'canary');
    },
  };
}

/** Offset from a peer's clock to CLOCK_MONOTONIC (0 for Node peers, which use it). */
async function clockOffset(peer) {
  if (peer.kind !== 'chromium') return 0;
  let best = null;
  for (let i = 0; i < 5; i++) {
    const t1 = hr();
    const p = await peer.call('clock');
    const t2 = hr();
    if (!best || t2 - t1 < best.rt) best = { rt: t2 - t1, offset: (t1 + t2) / 2 - p };
  }
  return best.offset; // within half a Playwright round trip (~1 ms); stalls that matter are longer
}

/**
 * Marks each latency sample that overlaps a canary stall: from its send time to its
 * arrival (one-way, shared clock) or to the echo's return (round trip).
 */
async function markStalls(state, sharedClock, offset) {
  state.inStall = null;
  if (!canary || !state.at.length) return;
  const spans = state.at.map((t, i) => [t + offset, t + offset + (sharedClock ? state.oneWay[i] : state.rtt[i])]);
  const from = Math.min(...spans.map((x) => x[0])) - 1;
  const to = Math.max(...spans.map((x) => x[1])) + 1;
  const stalls = await canary.stalls(from, to);
  if (!stalls) return;
  state.stalls = { count: stalls.length, ms: stalls.reduce((a, [x, y]) => a + (y - x), 0), longest: Math.max(0, ...stalls.map(([x, y]) => y - x)) };
  state.inStall = spans.map(([a, b]) => stalls.some(([x, y]) => x < b && y > a));
}

/** One steady-state round on a fresh connection: state stream, then bulk one or both ways. */
async function steadyRound(pair, room) {
  const { A, B } = pair;
  const out = { pair: pair.key };
  if (pair.baseline) {
    try {
      const port = await A.call('udpOpen');
      const c0 = cpuSnapshot();
      out.state = await B.call('udpStream', port, { hz: CONFIG.stateHz, size: CONFIG.stateBytes, seconds: CONFIG.stateSeconds });
      out.state.echoed = null;
      out.state.cpu = cpuBetween(c0, cpuSnapshot());
      await markStalls(out.state, true, 0);
    } catch (err) {
      out.error = err.message.split('\n')[0];
    }
    out.peerErrors = [];
    out.bulk = [];
    return out;
  }
  try {
    await A.call('join', room);
    const j = await B.call('joinTimed', room);
    const aId = j.peer;
    const bId = j.id;
    await A.call('waitConnected', bId);
    out.path = await B.call('stats', aId);
    await sleep(200);

    // Game state: B streams, A echoes.
    const offset = await clockOffset(B);
    let c0 = cpuSnapshot();
    const pingsBefore = await A.call('pingCount');
    out.state = await B.call('stateStream', aId, { hz: CONFIG.stateHz, size: CONFIG.stateBytes, seconds: CONFIG.stateSeconds });
    out.state.echoed = (await A.call('pingCount')) - pingsBefore;
    out.state.cpu = cpuBetween(c0, cpuSnapshot());
    await markStalls(out.state, pair.sharedClock, offset);

    // Bulk: B -> A (and A -> B for mixed pairs).
    out.bulk = [];
    const dirs = pair.bothWays ? [[B, A, pair.b, pair.a], [A, B, pair.a, pair.b]] : [[B, A, pair.b, pair.a]];
    for (const [S, R, sKind, rKind] of dirs) {
      const rId = R === A ? aId : bId;
      const rate = (got) => (got.count > 1 ? (got.bytes - got.firstBytes) / 1e6 / ((got.lastAt - got.firstAt) / 1000) : NaN);
      const complete = (sent, got) => got.count === sent.count && !sent.stalled && got.orderErrors === 0 && got.sizeErrors === 0;
      // The first transfer on this connection (not counted in the throughput figure).
      await sleep(200);
      await R.call('bulkReset', CONFIG.bulkBytes);
      const coldSent = await S.call('bulkSend', rId, { size: CONFIG.bulkBytes, seconds: CONFIG.bulkWarmupSeconds });
      const coldGot = await R.call('bulkWait', coldSent.count, 20_000);
      // The measured transfer.
      await sleep(200);
      await R.call('bulkReset', CONFIG.bulkBytes);
      c0 = cpuSnapshot();
      const sent = await S.call('bulkSend', rId, { size: CONFIG.bulkBytes, seconds: CONFIG.bulkSeconds });
      const got = await R.call('bulkWait', sent.count, 30_000);
      const cpu = cpuBetween(c0, cpuSnapshot());
      out.bulk.push({
        from: sKind,
        to: rKind,
        sent,
        got,
        cpu,
        mbps: rate(got),
        coldMbps: rate(coldGot),
        coldMs: coldGot.lastAt - coldGot.firstAt,
        coldSent,
        coldGot,
        coldOk: complete(coldSent, coldGot),
        ok: complete(sent, got),
      });
    }
  } catch (err) {
    out.error = err.message.split('\n')[0];
  } finally {
    const [ea, eb] = await Promise.allSettled([A.call('leave'), B.call('leave')]);
    out.peerErrors = [ea, eb].flatMap((r) => (r.status === 'fulfilled' ? r.value : [`leave: ${r.reason?.message}`]));
  }
  return out;
}

// ---- report -----------------------------------------------------------------------------

function machine(chromiumVersion) {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m);
    if (m) cpuModel = m[1].trim();
  } catch {
    // not Linux
  }
  const pkg = (name) => {
    try {
      return JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
    } catch {
      return '?';
    }
  };
  return {
    cpuModel,
    cores: os.cpus().length,
    ramGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    chromium: chromiumVersion,
    werift: pkg('werift'),
    wrtc: pkg('@roamhq/wrtc'),
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    loadavg: os.loadavg(),
  };
}

function analyse(pairs, connect, rounds) {
  const res = {};
  for (const p of pairs) {
    const runs = connect.filter((r) => r.pair === p.key && !r.warmup);
    const ok = runs.filter((r) => !r.error);
    const rs = rounds.filter((r) => r.pair === p.key);
    const states = rs.filter((r) => r.state).map((r) => r.state);
    const all = (f) => states.flatMap(f);
    const bulkDirs = {};
    for (const r of rs) {
      for (const b of r.bulk ?? []) {
        const k = `${b.from}->${b.to}`;
        (bulkDirs[k] ??= { from: b.from, to: b.to, runs: [] }).runs.push(b);
      }
    }
    res[p.key] = {
      pair: p,
      connect: {
        total: summary(ok.map((r) => r.totalMs)),
        self: summary(ok.map((r) => r.selfMs)),
        notice: summary(ok.map((r) => r.noticeMs)),
        signaling: summary(ok.map((r) => r.signalingMs)),
        failures: runs.filter((r) => r.error).map((r) => r.error),
        runs: runs.length,
      },
      state: {
        rounds: states.length,
        sent: states.reduce((a, s) => a + s.sent, 0),
        echoed: p.baseline ? null : states.reduce((a, s) => a + s.echoed, 0),
        pongs: states.reduce((a, s) => a + s.pongs, 0),
        late: states.reduce((a, s) => a + s.late, 0),
        oneWay: summary(all((s) => s.oneWay)),
        /** p99 of each round alone (one-way where the clock is shared, else RTT/2). */
        roundP99: states.map((s) => summary(p.sharedClock ? s.oneWay : s.rtt.map((x) => x / 2)).p99),
        ...attribution(states, p.sharedClock),
        back: summary(all((s) => s.backWay)),
        halfRtt: summary(all((s) => s.rtt.map((x) => x / 2))),
        rtt: summary(all((s) => s.rtt)),
        others: median(states.map((s) => s.cpu.others)),
        ours: median(states.map((s) => s.cpu.ours)),
        pressure: median(states.map((s) => s.cpu.pressure)),
      },
      bulk: Object.values(bulkDirs).map((d) => ({
        from: d.from,
        to: d.to,
        mbps: median(d.runs.map((b) => b.mbps)),
        all: d.runs.map((b) => b.mbps),
        cold: median(d.runs.map((b) => b.coldMbps)),
        coldAll: d.runs.map((b) => b.coldMbps),
        ok: d.runs.every((b) => b.ok && b.coldOk),
        bad: d.runs.flatMap((b) => [
          ...(b.ok ? [] : [`${b.got.count}/${b.sent.count} msgs, ${b.got.orderErrors} out of order, ${b.got.sizeErrors} bad size${b.sent.stalled ? ', a send waited > 10 s' : ''}`]),
          ...(b.coldOk ? [] : [`first transfer: ${b.coldGot.count}/${b.coldSent.count} msgs within 20 s, ${b.coldGot.orderErrors} out of order, ${b.coldGot.sizeErrors} bad size${b.coldSent.stalled ? ', a send waited > 10 s' : ''}`]),
        ]),
        ours: median(d.runs.map((b) => b.cpu.ours)),
        others: median(d.runs.map((b) => b.cpu.others)),
        pressure: median(d.runs.map((b) => b.cpu.pressure)),
      })),
      paths: [...new Set(rs.filter((r) => r.path).map((r) => `${r.path.path || '?'}, ${r.path.local?.type || '?'} ${r.path.local?.address || '(no address)'} -> ${r.path.remote?.type || '?'} ${r.path.remote?.address || '(no address)'}`))],
      errors: [...rs.filter((r) => r.error).map((r) => r.error), ...rs.flatMap((r) => r.peerErrors ?? [])],
    };
  }
  return res;
}

/** Samples over 5 ms, how many overlapped a machine stall, and the p99 of the others. */
function attribution(states, sharedClock) {
  const marked = states.filter((s) => s.inStall);
  const values = marked.flatMap((s) => (sharedClock ? s.oneWay : s.rtt.map((x) => x / 2)));
  const flags = marked.flatMap((s) => s.inStall);
  const over = values.map((v, i) => [v, flags[i]]).filter(([v]) => v > 5);
  return {
    marked: marked.length === states.length && states.length > 0,
    over5: over.length,
    over5InStall: over.filter(([, f]) => f).length,
    samplesInStall: flags.filter(Boolean).length,
    outside: summary(values.filter((_, i) => !flags[i])),
    stallCount: marked.reduce((a, s) => a + s.stalls.count, 0),
    stallMs: marked.reduce((a, s) => a + s.stalls.ms, 0),
    stallLongest: Math.max(0, ...marked.map((s) => s.stalls.longest)),
  };
}

/** The latency figure used for the target: one-way on a shared clock, else RTT/2. */
const latencyOf = (r) => (r.pair.sharedClock ? r.state.oneWay : r.state.halfRtt);
const pctOf = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)} %` : 'n/a');

function buildReport(res, m, meta) {
  const L = [];
  const rows = Object.values(res);
  const rtcRows = rows.filter((r) => !r.pair.baseline);
  L.push(BENCH_HEADING, '');
  L.push('Command: `npm run bench:peer` (builds, then runs `node bench/peer.mjs`; the script rewrites this section).', '');
  L.push(
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${fmt(m.ramGiB, 0)} GiB RAM, Node ${m.node}, ${m.chromium} (Debian, headless), werift ${m.werift}, @roamhq/wrtc ${m.wrtc}, ${m.os}. Run: ${m.date}, ${fmt(meta.seconds, 0)} s.`,
    '',
  );
  L.push(
    `Load: other jobs shared the machine during the run (load average ${m.loadavg.map((x) => fmt(x, 1)).join(' / ')} at the start). Each table gives, per phase (median), the cores our processes used, the cores everything else used, and "CPU wait": the share of the time during which some runnable task waited for a CPU (Linux PSI \`/proc/pressure/cpu\`, "some"). ` +
      'Latency tails follow that load (with two busy loops of other jobs on both cores, every pair here, the plain-UDP baseline included, has had a p99 of tens of ms): the baseline row shows what the machine alone adds in the same run.',
    '',
  );
  L.push(
    'Setup: one machine. The signaling service (`listenSignaling`) runs in the benchmark process on 127.0.0.1; the peers connect directly through their host candidates, i.e. this machine\'s own addresses (see the notes; WebRTC stacks do not offer loopback candidates), so no packet leaves the machine. Every peer is a process of its own: a Node child running the built `rallypoint/node` ' +
      '(`joinRoom`; werift by default, or `rtc: wrtc`), or a Chromium page (its own browser context, so its own renderer) running the browser bundle `dist/web/rallypoint.min.js`; ' +
      'both run the same agent code (`bench/lib/peer-agent.mjs`) with the default channels (`reliable`: ordered; `unreliable`: unordered, maxRetransmits 0) and default flow limits. ' +
      'Chromium runs with IP host candidates (no mDNS names, as in the browser tests). Runs are interleaved across pairs (run 1 of every pair, then run 2, ...). ' +
      '"Node (wrtc)" is `rtc: wrtc` exactly as documented (`import wrtc from \'@roamhq/wrtc\'`, nothing added).',
    '',
  );

  // 1. connection setup
  L.push(`### Connection setup (${CONFIG.connectRuns} runs per pair, after ${CONFIG.connectWarmup} warm-up runs)`, '');
  L.push(
    "From the call of `joinRoom` by the second peer (the one that offers) to both sides having emitted `peer-connected` (every channel open), in ms. Timed on the joining peer's clock: its own `peer-connected`, and a notice the other side sends on its `peer-connected` (so the figure includes one extra one-way trip, about 1 ms here). \"signaling\" is the part until `joinRoom` resolved (WebSocket + welcome).",
    '',
  );
  L.push('| pair (first <-> joining) | p50 | p90 | min | max | signaling p50 | failed |', '|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rtcRows) {
    const c = r.connect;
    L.push(`| ${label(r.pair.a)} <-> ${label(r.pair.b)} | ${fmtMs(c.total.p50)} | ${fmtMs(c.total.p90)} | ${fmtMs(c.total.min)} | ${fmtMs(c.total.max)} | ${fmtMs(c.signaling.p50)} | ${c.failures.length}/${c.runs} |`);
  }
  L.push('');

  // 2. latency
  const n = rows.find((r) => r.state.rounds)?.state.rounds ?? 0;
  L.push(`### Game-state latency (${CONFIG.stateHz} Hz x ${CONFIG.stateBytes} B on \`unreliable\`, ${n} x ${CONFIG.stateSeconds} s per pair)`, '');
  L.push(
    'The joining peer sends; each message carries its sequence number and send time; the other side echoes it at once (so both directions carry 60 Hz state). ' +
      '**one-way**: receive time minus send time, both read from CLOCK_MONOTONIC (`process.hrtime`), which every process on the machine shares: exact for Node <-> Node. ' +
      "A Chromium page has no clock shared with another process, so for every pair **RTT/2** is given too (round trip on the sender's clock, halved; it includes the echoing side's turnaround). ms. " +
      '"delivered": messages that arrived there / echoes that arrived back. "p99 per round": the p99 of each round alone (one-way where the clock is shared, else RTT/2); other jobs\' load differs from round to round, and the pooled p99 is set by the worst round.',
    '',
  );
  L.push(
    '| pair | delivered | one-way p50 | one-way p99 | one-way max | RTT/2 p50 | RTT/2 p99 | RTT/2 max | p99 per round |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of rows) {
    const s = r.state;
    const ow = r.pair.sharedClock;
    const delivered = s.echoed === null ? `${s.pongs}/${s.sent} (round trips)` : `${s.echoed}/${s.sent}, ${s.pongs}/${s.echoed}`;
    L.push(
      `| ${r.pair.name} | ${delivered} | ${ow ? fmtMs(s.oneWay.p50) : '-'} | ${ow ? fmtMs(s.oneWay.p99) : '-'} | ${ow ? fmtMs(s.oneWay.max) : '-'} | ${fmtMs(s.halfRtt.p50)} | ${fmtMs(s.halfRtt.p99)} | ${fmtMs(s.halfRtt.max)} | ${s.roundP99.map(fmtMs).join(', ')} |`,
    );
  }
  L.push('');
  L.push(
    'Where the tail comes from. A canary process (`bench/lib/canary.mjs`, a bare 1 ms timer) runs through the whole benchmark and records every moment it did not get a CPU for more than 3 ms ("machine stall": other jobs, the VM, reclaim). ' +
      'A sample that overlaps such a stall (from its send to its arrival; for RTT/2 pairs to the echo\'s return, with the page clock mapped onto CLOCK_MONOTONIC to within about 1 ms) was delayed, at least partly, by the machine. ' +
      '"p99 outside machine stalls" is the p99 of the other samples: the figure the code under test answers for. Latency figure as above (one-way where the clock is shared, else RTT/2).',
    '',
  );
  L.push(
    '| pair | samples > 5 ms | of which during a machine stall | p99 outside machine stalls | machine stalls (count, total, longest) | our CPU / others (cores) | CPU wait |',
    '|---|---:|---:|---:|---|---:|---:|',
  );
  for (const r of rows) {
    const s = r.state;
    L.push(
      s.marked
        ? `| ${r.pair.name} | ${s.over5} | ${s.over5InStall} | ${fmtMs(s.outside.p99)} (${s.outside.n} samples) | ${s.stallCount}, ${fmtMs(s.stallMs)} ms, ${fmtMs(s.stallLongest)} ms | ${fmt(s.ours, 2)} / ${fmt(s.others, 2)} | ${pctOf(s.pressure)} |`
        : `| ${r.pair.name} | - | - | - | no canary data | ${fmt(s.ours, 2)} / ${fmt(s.others, 2)} | ${pctOf(s.pressure)} |`,
    );
  }
  L.push('');

  // 3. throughput
  L.push(`### Bulk throughput (\`reliable\`, ${CONFIG.bulkBytes / 1024} KiB messages, each \`send()\` awaited, ${CONFIG.bulkSeconds} s of sending, ${n} rounds)`, '');
  L.push(
    'MB/s (10^6 bytes) at the receiver, from the first to the last message received (the sender stops after the fixed time; the rest drains). Every message arrived, in order and whole, unless marked. Median of the rounds; each round listed. ' +
      `Each round uses a fresh connection, and each direction first sends for ${CONFIG.bulkWarmupSeconds} s unmeasured ("first transfer" column, until drained): a Chromium sender's first transfer on a new connection collapses after its first ~2 MB for several seconds (seen with plain RTCPeerConnections in two pages too, whatever the watermarks; the next transfers run at full speed).`,
    '',
  );
  L.push('| sender -> receiver | MB/s (median) | rounds MB/s | first transfer MB/s (median; rounds) | complete, in order | our CPU / others (cores) | CPU wait |', '|---|---:|---|---|---|---:|---:|');
  for (const r of rtcRows) {
    for (const b of r.bulk) {
      L.push(`| ${label(b.from)} -> ${label(b.to)} | ${fmt(b.mbps, 1)} | ${b.all.map((x) => fmt(x, 1)).join(', ')} | ${fmt(b.cold, 1)}; ${b.coldAll.map((x) => fmt(x, 1)).join(', ')} | ${b.ok ? 'yes' : `NO: ${b.bad.join('; ')}`} | ${fmt(b.ours, 2)} / ${fmt(b.others, 2)} | ${pctOf(b.pressure)} |`);
    }
  }
  L.push('');

  // targets
  const lat = rtcRows.map((r) => ({ name: r.pair.name, p99: latencyOf(r).p99, how: r.pair.sharedClock ? 'one-way' : 'RTT/2' }));
  const base = res.udp;
  const bulkOf = (key) => res[key]?.bulk[0]?.mbps ?? NaN;
  const cc = bulkOf('chromium');
  const wr = bulkOf('wrtc');
  const we = bulkOf('werift');
  const nodeBest = Math.max(Number.isFinite(wr) ? wr : -1, Number.isFinite(we) ? we : -1);
  const fasterNode = !(we > wr) ? '@roamhq/wrtc' : 'werift';
  L.push('### Targets', '');
  const openOk = rtcRows.length > 0 && rtcRows.every((r) => r.connect.total.p50 < 300 && r.connect.failures.length === 0);
  L.push(
    `- Connection setup (\`joinRoom\` to \`peer-connected\` on both sides) under 300 ms at p50: **${openOk ? 'met' : 'NOT met'}** ` +
      `(${rtcRows.map((r) => `${label(r.pair.a)} <-> ${label(r.pair.b)} ${fmtMs(r.connect.total.p50)} ms${r.connect.failures.length ? `, ${r.connect.failures.length}/${r.connect.runs} failed` : ''}`).join('; ')}).`,
  );
  const latOk = lat.every((x) => x.p99 < 5);
  L.push(
    `- Game-state p99 under 5 ms (pooled over the rounds): **${latOk ? 'met' : 'NOT met'}** (${lat.map((x) => `${x.name} ${fmtMs(x.p99)} ms ${x.how}`).join('; ')})` +
      `${base ? `; the plain-UDP baseline without WebRTC, same run: ${fmtMs(base.state.oneWay.p99)} ms one-way${base.state.oneWay.p99 >= 5 ? ', so the machine alone misses it' : ''}` : ''}. ` +
      `Rounds under 5 ms: ${rtcRows.map((r) => `${r.pair.name} ${r.state.roundP99.filter((x) => x < 5).length}/${r.state.roundP99.length}`).join(', ')}${base ? `; baseline ${base.state.roundP99.filter((x) => x < 5).length}/${base.state.roundP99.length}` : ''}.`,
  );
  if (rtcRows.every((r) => r.state.marked)) {
    const cleanOk = rtcRows.every((r) => r.state.outside.p99 < 5);
    L.push(
      `- The same target on the samples outside machine stalls: **${cleanOk ? 'met' : 'NOT met'}** (${rtcRows.map((r) => `${r.pair.name} ${fmtMs(r.state.outside.p99)} ms`).join('; ')}); ` +
        `samples over 5 ms that overlapped no machine stall: ${rtcRows.map((r) => `${r.pair.name} ${r.state.over5 - r.state.over5InStall}/${r.state.outside.n}`).join(', ')}.`,
    );
  }
  const ratio = nodeBest / cc;
  L.push(
    `- Node <-> Node throughput at least half of Chromium <-> Chromium with the faster runtime (${fasterNode}): **${ratio >= 0.5 ? 'met' : 'NOT met'}** ` +
      `(${fmt(nodeBest, 1)} vs ${fmt(cc, 1)} MB/s = ${fmt(ratio * 100, 0)} %; werift ${fmt(we, 1)} MB/s = ${fmt((we / cc) * 100, 0)} %).`,
  );
  L.push('');
  if (meta.notes.length) {
    L.push('### Notes', '');
    for (const x of meta.notes) L.push(`- ${x}`);
    L.push('');
  }
  return L.join('\n').trimEnd();
}

function writeBenchmarks(section) {
  const file = join(root, 'BENCHMARKS.md');
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\nFigures from one machine; compare ratios, not absolute numbers.\n';
  const start = text.indexOf(`\n${BENCH_HEADING}\n`);
  if (start === -1) {
    text = `${text.trimEnd()}\n\n${section}\n`;
  } else {
    const from = start + 1;
    const after = text.slice(from + BENCH_HEADING.length);
    const next = after.search(/\n## /);
    const tail = next === -1 ? '' : after.slice(next + 1);
    text = `${text.slice(0, from)}${section}\n${tail ? `\n${tail}` : ''}`;
  }
  writeFileSync(file, text);
  return file;
}

// ---- main -------------------------------------------------------------------------------

/**
 * @roamhq/wrtc never fires `bufferedamountlow`; a reliable send that waits above the high
 * watermark must still resolve. With a 64 KiB high watermark the sender passes it at once,
 * every time (with the default limits that depends on the CPU), so one transfer with it
 * checks that a bulk transfer with `rtc: wrtc` completes. One line in the notes.
 */
const CHECK_FLOW = { highWaterMark: 64 * 1024, lowWaterMark: 16 * 1024 };

async function wrtcWatermarkCheck(wsUrl) {
  let A = null;
  let B = null;
  const what = `@roamhq/wrtc (\`rtc: wrtc\`), flow highWaterMark 64 KiB (passed at once): one ${CONFIG.bulkSeconds} s bulk transfer Node -> Node`;
  try {
    [A, B] = await Promise.all([startNodePeer('wrtc', wsUrl, { flow: CHECK_FLOW }), startNodePeer('wrtc', wsUrl, { flow: CHECK_FLOW })]);
    const aId = await A.call('join', 'wrtc-watermark');
    await B.call('joinTimed', 'wrtc-watermark');
    await A.call('bulkReset', CONFIG.bulkBytes);
    const sent = await B.call('bulkSend', aId, { size: CONFIG.bulkBytes, seconds: CONFIG.bulkSeconds, stallMs: 3_000 });
    const got = await A.call('bulkWait', sent.count, 3_000);
    await Promise.allSettled([A.call('leave'), B.call('leave')]);
    const ok = got.count === sent.count && !sent.stalled && got.orderErrors === 0 && got.sizeErrors === 0;
    const mbps = (got.bytes - got.firstBytes) / 1e6 / ((got.lastAt - got.firstAt) / 1000);
    if (ok) return { ok, line: `${what} completed: ${got.count}/${sent.count} messages, in order and whole, ${fmt(mbps, 1)} MB/s.` };
    return {
      ok,
      line:
        `${what} did NOT complete: ${got.count}/${sent.count} messages, ${got.orderErrors} out of order, ${got.sizeErrors} bad size` +
        `${sent.stalled ? `; a send never resolved after ${fmt(got.bytes / 1e6, 1)} MB (${fmt(sent.stalledAfterMs / 1000, 2)} s)` : ''}.`,
    };
  } catch (err) {
    return { ok: false, line: `${what}: check failed: ${err.message.split('\n')[0]}.` };
  } finally {
    for (const p of [A, B]) p?.kill();
  }
}

async function main() {
  const began = performance.now();
  const elapsed = () => performance.now() - began;
  for (const f of ['dist/peer/node.js', 'dist/signaling/server/index.js', 'dist/web/rallypoint.min.js']) {
    if (!existsSync(join(root, f))) throw new Error(`${f} is missing: run \`npm run build\` (or \`npm run bench:peer\`)`);
  }
  const wanted = typeof args.pairs === 'string' ? args.pairs.split(',') : null;
  const pairs = PAIRS.filter((p) => !wanted || wanted.includes(p.key));
  const rtcPairs = pairs.filter((p) => !p.baseline);
  const needsChromium = pairs.some((p) => p.a === 'chromium' || p.b === 'chromium');

  const { listenSignaling } = await import(new URL('../dist/signaling/server/index.js', import.meta.url).href);
  signaling = await listenSignaling({ port: 0, host: '127.0.0.1', logger: false, limits: { maxConnectionsPerIp: 0 }, onRequest: servePages });
  let chromiumVersion = 'no Chromium';
  if (needsChromium) {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, timeout: 20_000 });
    chromiumVersion = `Chromium ${browser.version()}`;
  }
  const m = machine(chromiumVersion);
  console.log(`peer benchmark: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, ${chromiumVersion}, load ${m.loadavg.map((x) => fmt(x, 1)).join(' ')}`);

  canary = await startCanary();
  // Two long-lived peers per pair (a process or a page each), reused by every run.
  const notes = [];
  await Promise.all(
    pairs.map(async (p) => {
      const start = (kind) => (kind === 'chromium' ? startPagePeer(signaling.url, signaling.wsUrl) : startNodePeer(kind, signaling.wsUrl));
      [p.A, p.B] = await Promise.all([start(p.a), start(p.b)]);
    }),
  );
  for (const p of pairs) for (const peer of [p.A, p.B]) if (peer.kind === 'chromium' && !peer.isolated) notes.push('a Chromium page was not cross-origin isolated: its timer resolution was 100 µs');
  console.log(`peers started (${fmt(elapsed() / 1000, 1)} s)`);

  // 1. connection setup, interleaved
  const connect = [];
  for (let i = 0; i < CONFIG.connectWarmup + CONFIG.connectRuns && !stopping; i++) {
    for (const p of rtcPairs) {
      const r = await connectRun(p, `connect-${p.key}-${i}`);
      connect.push({ pair: p.key, warmup: i < CONFIG.connectWarmup, ...r });
      if (r.error) console.log(`connect ${p.key} run ${i}: ${r.error}`);
    }
    const last = connect.slice(-rtcPairs.length);
    console.log(`connect run ${String(i + 1).padStart(2)}${i < CONFIG.connectWarmup ? ' (warm-up)' : ''}: ${last.map((r) => `${r.pair} ${r.error ? 'FAILED' : `${fmtMs(r.totalMs)} ms`}`).join('  ')}`);
  }
  console.log(`connection setup done (${fmt(elapsed() / 1000, 1)} s)`);

  // 2+3. steady state, interleaved rounds on fresh connections
  const rounds = [];
  let roundMs = 0;
  for (let round = 0; round < CONFIG.rounds && !stopping; round++) {
    if (round > 0 && elapsed() + roundMs > CONFIG.softDeadlineMs) {
      notes.push(`time budget: stopped after ${round} of ${CONFIG.rounds} steady-state rounds (machine busy)`);
      console.log(notes[notes.length - 1]);
      break;
    }
    const t = performance.now();
    for (const p of pairs) {
      const r = await steadyRound(p, `steady-${p.key}-${round}`);
      rounds.push(r);
      if (r.error) {
        console.log(`round ${round + 1} ${p.key}: ERROR ${r.error}`);
        continue;
      }
      const s = r.state;
      const lat = summary(p.sharedClock ? s.oneWay : s.rtt.map((x) => x / 2));
      console.log(
        `round ${round + 1} ${p.key.padEnd(15)} state ${s.echoed ?? '-'}/${s.sent}/${s.pongs} ${p.sharedClock ? 'one-way' : 'RTT/2'} p50 ${fmtMs(lat.p50)} p99 ${fmtMs(lat.p99)} max ${fmtMs(lat.max)} ms` +
          (r.bulk.length ? ` | bulk ${r.bulk.map((b) => `${b.from}->${b.to} ${fmt(b.mbps, 1)} MB/s${b.ok ? '' : ' INCOMPLETE'}${b.coldOk ? '' : ` (first transfer incomplete: ${b.coldGot.count}/${b.coldSent.count}${b.coldSent.stalled ? ', stalled' : ''})`}`).join(', ')}` : '') +
          ` | others ${fmt(s.cpu.others, 2)} cores, CPU wait ${pctOf(s.cpu.pressure)}${r.peerErrors.length ? ` | peer errors: ${r.peerErrors.join('; ')}` : ''}`,
      );
    }
    roundMs = performance.now() - t;
  }
  console.log(`steady-state rounds done (${fmt(elapsed() / 1000, 1)} s)`);

  // wrtc: a transfer that waits above a small high watermark completes (no bufferedamountlow)
  let check = null;
  if ((!wanted || wanted.includes('wrtc')) && !stopping) {
    check = await wrtcWatermarkCheck(signaling.wsUrl);
    console.log(`check: ${check.line}`);
  }

  const res = analyse(pairs, connect, rounds);
  for (const r of Object.values(res)) {
    if (r.connect.failures.length) notes.push(`${r.pair.name}: ${r.connect.failures.length} connection run(s) failed: ${[...new Set(r.connect.failures)].join('; ')}`);
    if (r.errors.length) notes.push(`${r.pair.name}: ${[...new Set(r.errors)].join('; ')}`);
    if (r.paths.length) notes.push(`${r.pair.name}: selected candidate pair (joining side's view, when connected) ${r.paths.join('; ')}.`);
    if (r.state.late) notes.push(`${r.pair.name}: the sender's 60 Hz timer fired more than a period late ${r.state.late} time(s) (the process did not get a CPU in time).`);
  }
  for (const p of pairs) for (const peer of [p.A, p.B]) if (peer.pageErrors?.length) notes.push(`page errors (${p.key}): ${[...new Set(peer.pageErrors)].join('; ')}`);
  if (check) notes.push(check.line);

  if (stopping) throw new Error('stopped before the end: nothing written');
  const section = buildReport(res, m, { seconds: elapsed() / 1000, notes });
  console.log(`\n${section}\n`);
  if (!args['no-write']) console.log(`written to ${writeBenchmarks(section)}`);
  console.log(`total ${fmt(elapsed() / 1000, 0)} s`);
  return res;
}

const watchdog = setTimeout(() => {
  console.error(`watchdog: the benchmark did not finish in ${CONFIG.watchdogMs / 1000} s; stopping`);
  exitAfterCleanup(2);
}, CONFIG.watchdogMs);

main().then(
  async () => {
    clearTimeout(watchdog);
    await cleanup();
    process.exit(0);
  },
  async (err) => {
    clearTimeout(watchdog);
    console.error(err?.stack ?? err);
    await cleanup();
    process.exit(1);
  },
);
