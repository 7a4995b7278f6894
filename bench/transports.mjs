#!/usr/bin/env node
/**
 * Signaling transports benchmark: rallypoint over WebSocket, SSE and long-poll
 * against socket.io (engine.io) over polling and WebSocket. Not a test: it measures into
 * test-artifacts/bench/transports.json (or --json FILE), then renders the "## Signaling
 * transports" section of BENCHMARKS.md from it (bench/report/transports.mjs).
 *
 *   npm run bench:transports                         # build, then the full run
 *   node bench/transports.mjs --rounds 1 --no-write  # quick look; dist/ must be built
 *   options: --parts connect,relay,idle  --rounds 3  --window 1024  --paced-rate 200
 *            --warmup-ms 500 --measure-ms 2000 --paced-ms 3000  --idle 500  --placement pinned|shared
 *
 * connect: time from the call to connected (rallypoint: its default ladder to `welcome`;
 *   socket.io: its defaults, polling then upgrade, to 'connect') behind each proxy setup
 *   (SETUPS below), one long-lived server of each, rounds interleaved.
 * relay:   per transport, on a fresh server process each round (order rotated): A keeps
 *   `window` signals in flight to B (max msg/s; server pinned to CPU 0, this process to the
 *   others), then A sends `paced-rate` signals/s (one-way latency, send time in the payload,
 *   A and B in this process). Server CPU: utime+stime from /proc/PID/stat ÷ messages.
 * idle:    per transport, `idle` joined (socket.io: connected) clients held open; the server's
 *   RSS growth ÷ clients.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, list } from './lib/args.mjs';
import { runMain } from './lib/children.mjs';
import { drive } from './lib/cluster-load.mjs';
import { freePort, startRallypoint, startSocketIo, stop } from './lib/cluster-procs.mjs';
import { fmt, fmtInt } from './lib/format.mjs';
import { quantile } from './lib/hist.mjs';
import { machine } from './lib/machine.mjs';
import { startMiddlebox } from './lib/middlebox.mjs';
import { startNginx } from './lib/nginx.mjs';
import { placement, waitQuiet } from './lib/placement.mjs';
import { processCpuSeconds, processRssBytes, runQueueWaitSeconds } from './lib/proc-cpu.mjs';
import { publish } from './lib/results.mjs';
import { rallypointClient, rallypointConnect, rallypointPair, socketIoClient, socketIoConnect, socketIoPair } from './lib/transport-clients.mjs';
import * as report from './report/transports.mjs';
import { SETUPS, TRANSPORTS } from './report/transports.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = benchArgs({
  parts: { type: 'string', default: 'connect,relay,idle' },
  rounds: { type: 'string', default: '3' },
  window: { type: 'string', default: '1024' },
  'paced-rate': { type: 'string', default: '200' },
  'warmup-ms': { type: 'string', default: '500' },
  'measure-ms': { type: 'string', default: '2000' },
  'paced-ms': { type: 'string', default: '3000' },
  idle: { type: 'string', default: '500' },
  placement: { type: 'string', default: 'pinned' },
});
const parts = list(args.parts);
const ROUNDS = Number(args.rounds);
const PACED_RATE = Number(args['paced-rate']);
const IDLE = Number(args.idle);
const place = placement(args.placement);
/** How long socket.io gets after 'connect' to finish (or fail) its upgrade. */
const UPGRADE_WAIT_MS = 3000;

const startServer = (t, cpus) => (t.rp ? startRallypoint({ cpus }) : startSocketIo({ cpus, transports: 'polling,websocket' }));

// ---- connect ----------------------------------------------------------------------------

async function connectPart(log) {
  const rp = await startRallypoint({});
  const sio = await startSocketIo({ transports: 'polling,websocket' });
  const nginx = {};
  for (const mode of ['pass', 'strip', 'buffered']) nginx[mode] = await startNginx(mode, [rp.port, sio.port]);
  const boxes = [await startMiddlebox(rp.port), await startMiddlebox(sio.port)];
  const ports = {
    direct: [rp.port, sio.port],
    ...Object.fromEntries(Object.entries(nginx).map(([m, n]) => [m, n.ports])),
    middlebox: boxes.map((b) => b.port),
  };
  const results = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < SETUPS.length; i++) {
        const setup = SETUPS[(i + round) % SETUPS.length];
        const [rpPort, sioPort] = ports[setup.key];
        const r = await rallypointConnect(`ws://127.0.0.1:${rpPort}/ws`, `connect-${setup.key}-${round}`);
        const s = await socketIoConnect(`http://127.0.0.1:${sioPort}`, UPGRADE_WAIT_MS);
        results.push({ setup: setup.key, round, rp: r, sio: s });
        log(
          `round ${round + 1} ${setup.key.padEnd(9)} rallypoint ${fmt(r.ms, 0).padStart(5)} ms on ${r.transport} (${r.reason || 'first choice'}) | ` +
            `socket.io ${fmt(s.ms, 0).padStart(5)} ms on ${s.transport}, upgrade ${s.upgrade}${s.upgradeMs ? ` at ${fmt(s.upgradeMs, 0)} ms` : ''}`,
        );
      }
    }
  } finally {
    await Promise.all([...Object.values(nginx).map((n) => n.stop()), ...boxes.map((b) => b.close()), stop(rp.child), stop(sio.child)]);
  }
  return results;
}

// ---- relay ------------------------------------------------------------------------------

async function relayRound(t, round) {
  const server = await startServer(t, place.serverCpus);
  const pair = t.rp ? await rallypointPair(server.wsUrl, t.rp, `relay-${round}`) : await socketIoPair(server.url, t.sio);
  const probe = async () => ({ servers: processCpuSeconds(server.pid), redis: 0, wait: runQueueWaitSeconds(server.pid), calls: {} });
  const summarize = (r) => ({
    rate: r.rate,
    p50: quantile(r.hist, 0.5),
    p99: quantile(r.hist, 0.99),
    max: r.maxMs,
    us: (r.servers * 1e6) / r.messages,
    genCores: r.genCores,
    others: r.others,
    disturbed: r.disturbed,
    leftOutS: r.leftOutS,
    errors: r.seqErrors + r.lost,
  });
  const phase = { warmupMs: Number(args['warmup-ms']), probe };
  try {
    place.pin([server.pid], place.serverCpus);
    place.pin([process.pid], place.loadCpus);
    const saturated = summarize(await drive(pair, { mode: 'window', window: Number(args.window), ...phase, measureMs: Number(args['measure-ms']) }));
    place.pin([server.pid, process.pid], place.allCpus);
    const paced = summarize(await drive(pair, { mode: 'paced', rate: PACED_RATE, ...phase, measureMs: Number(args['paced-ms']) }));
    return { key: t.key, round, saturated, paced, unexpected: [...pair.unexpected] };
  } finally {
    await pair.close();
    await stop(server.child);
  }
}

async function relayPart(log) {
  const results = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < TRANSPORTS.length; i++) {
      const t = TRANSPORTS[(i + round) % TRANSPORTS.length];
      await waitQuiet();
      const r = await relayRound(t, round);
      results.push(r);
      const [s, p] = [r.saturated, r.paced];
      log(
        `round ${round + 1} ${t.key.padEnd(13)} ${fmtInt(s.rate).padStart(7)} msg/s ${fmt(s.us, 1)} µs/msg gen ${fmt(s.genCores, 2)} others ${fmt(s.others, 2)} | ` +
          `paced p50 ${fmt(p.p50, 2)} p99 ${fmt(p.p99, 2)} ms ${fmt(p.us, 0)} µs/msg others ${fmt(p.others, 2)}` +
          `${s.disturbed || p.disturbed ? ' DISTURBED' : ''}${s.errors || p.errors || r.unexpected.length ? `  ERRORS ${s.errors + p.errors} ${r.unexpected.join(' | ')}` : ''}`,
      );
    }
  }
  return results;
}

// ---- idle -------------------------------------------------------------------------------

async function idleOne(t) {
  const server = await startServer(t, undefined);
  const url = t.rp ? server.wsUrl : server.url;
  const open = (i) => (t.rp ? rallypointClient(url, `idle-${Math.floor(i / 20)}`, [t.rp]) : socketIoClient(url, [t.sio]));
  const close = (c) => (t.rp ? c.close() : c.disconnect());
  const clients = [];
  try {
    // One client first, so code loaded and compiled on first use is in the baseline.
    await close(await open(-1));
    await new Promise((r) => setTimeout(r, 500));
    const before = processRssBytes(server.pid);
    for (let i = 0; i < IDLE; i += 50) clients.push(...(await Promise.all(Array.from({ length: Math.min(50, IDLE - i) }, (_, j) => open(i + j)))));
    await new Promise((r) => setTimeout(r, 1500));
    const after = processRssBytes(server.pid);
    return { key: t.key, perClient: (after - before) / IDLE, before, after };
  } finally {
    await Promise.all(clients.map(close));
    await stop(server.child);
  }
}

// ---- main -------------------------------------------------------------------------------

async function main() {
  const began = performance.now();
  const m = machine();
  console.log(`transports benchmark: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}; placement ${place.name}`);
  if (!existsSync(join(root, 'dist', 'signaling', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (or `npm run bench:transports`)');
  await freePort(); // fail early if we cannot bind
  const conn = parts.includes('connect') ? await connectPart(console.log) : [];
  const relay = parts.includes('relay') ? await relayPart(console.log) : [];
  const idle = [];
  if (parts.includes('idle')) {
    for (const t of TRANSPORTS) {
      await waitQuiet();
      const r = await idleOne(t);
      idle.push(r);
      console.log(`idle ${t.key.padEnd(13)} ${fmtInt(IDLE)} clients: RSS ${fmt(r.before / 2 ** 20, 1)} -> ${fmt(r.after / 2 ** 20, 1)} MiB, ${fmt(r.perClient / 1024, 1)} KiB per client`);
    }
  }
  const config = {
    rounds: ROUNDS,
    pacedRate: PACED_RATE,
    idle: IDLE,
    window: Number(args.window),
    warmupMs: Number(args['warmup-ms']),
    measureMs: Number(args['measure-ms']),
    pacedMs: Number(args['paced-ms']),
    upgradeWaitMs: UPGRADE_WAIT_MS,
    placement: { name: place.name, pinned: place.pinned },
  };
  publish('transports', { name: 'transports', machine: m, config, connect: conn, relay, idle }, report, { json: args.json, noWrite: args['no-write'] });
  console.log(`total ${fmt((performance.now() - began) / 1000, 0)} s`);
}

runMain(main);
