/**
 * Peer library benchmark (`npm run bench:peer`): connection setup time, game-state latency
 * and bulk throughput of rallypoint rooms, side by side for
 *   Node <-> Node with werift, Node <-> Node with @roamhq/wrtc,
 *   Node (werift) <-> Chromium, Node (@roamhq/wrtc) <-> Chromium, Chromium <-> Chromium,
 * plus a plain-UDP latency baseline, on this machine only: the signaling service runs in this
 * process on 127.0.0.1; the peers connect through their host candidates (this machine's own
 * addresses). Measures into test-artifacts/bench/peer.json (or --json FILE), then renders the
 * "## Peer library" section of BENCHMARKS.md and its summary rows from it
 * (bench/report/peer.mjs; nothing else in the file).
 *
 * Every peer is its own process: a Node child (bench/lib/node-peer.mjs) or a Chromium page
 * in its own browser context (renderer process), running the same agent code
 * (bench/lib/peer-agent.mjs). Measurements are interleaved across the pairs (run 1 of every
 * pair, then run 2, ...) so that load from other jobs on the machine spreads over all pairs.
 *
 * Bounded: about 3.5 minutes; no new round starts after 280 s and a watchdog stops
 * everything at 330 s. Children, pages and the browser are killed on every exit path.
 *
 * Options: --quick (few runs, for trying the script), --no-write (do not touch BENCHMARKS.md), --json FILE,
 *          --pairs=werift,wrtc,werift-chromium,wrtc-chromium,chromium,udp
 */
import { fork } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './lib/args.mjs';
import { fmt, fmtMs, pct as pctOf } from './lib/format.mjs';
import { machine, packageVersion } from './lib/machine.mjs';
import { cpuBetween, cpuSnapshot, descendants } from './lib/proc-cpu.mjs';
import { publish } from './lib/results.mjs';
import { summary } from './lib/stats.mjs';
import * as report from './report/peer.mjs';
import { PAIRS } from './report/peer.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = benchArgs({
  quick: { type: 'boolean', default: false },
  pairs: { type: 'string' },
});
const QUICK = args.quick;

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
      return withTimeout(
        new Promise((resolve) => {
          pending.set(id, resolve);
          child.send({ id, from, to });
        }),
        10_000,
        'canary',
      );
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
    const dirs = pair.bothWays
      ? [
          [B, A, pair.b, pair.a],
          [A, B, pair.a, pair.b],
        ]
      : [[B, A, pair.b, pair.a]];
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
  const m = machine({ chromium: chromiumVersion, werift: packageVersion('werift'), wrtc: packageVersion('@roamhq/wrtc') });
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
          (r.bulk.length
            ? ` | bulk ${r.bulk.map((b) => `${b.from}->${b.to} ${fmt(b.mbps, 1)} MB/s${b.ok ? '' : ' INCOMPLETE'}${b.coldOk ? '' : ` (first transfer incomplete: ${b.coldGot.count}/${b.coldSent.count}${b.coldSent.stalled ? ', stalled' : ''})`}`).join(', ')}`
            : '') +
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

  const pageErrors = [];
  for (const p of pairs) for (const peer of [p.A, p.B]) if (peer.pageErrors?.length) pageErrors.push(`page errors (${p.key}): ${[...new Set(peer.pageErrors)].join('; ')}`);

  if (stopping) throw new Error('stopped before the end: nothing written');
  const results = { name: 'peer', machine: m, config: CONFIG, pairs: pairs.map((p) => p.key), connect, rounds, seconds: elapsed() / 1000, notes, pageErrors, check: check?.line ?? null };
  publish('peer', results, report, { json: args.json, noWrite: args['no-write'] });
  console.log(`total ${fmt(elapsed() / 1000, 0)} s`);
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
