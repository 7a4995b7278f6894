#!/usr/bin/env node
/**
 * Signaling transports benchmark (issue 11): rallypoint over WebSocket, SSE and long-poll
 * against socket.io (engine.io) over polling and WebSocket. Not a test: it prints markdown
 * and rewrites the "## Signaling transports (issue 11)" section of BENCHMARKS.md.
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
import { parseArgs } from 'node:util';
import { drive, FOREIGN_LIMIT_CORES } from './lib/cluster-load.mjs';
import { freePort, killAll, startRallypoint, startSocketIo, stop } from './lib/cluster-procs.mjs';
import { quantile } from './lib/hist.mjs';
import { startMiddlebox } from './lib/middlebox.mjs';
import { startNginx } from './lib/nginx.mjs';
import { placement, waitQuiet } from './lib/placement.mjs';
import { processCpuSeconds, processRssBytes, runQueueWaitSeconds } from './lib/proc-cpu.mjs';
import { fmt, fmtInt, machine, machineLine, median, writeSection } from './lib/report.mjs';
import { rallypointClient, rallypointConnect, rallypointPair, socketIoClient, socketIoConnect, socketIoPair } from './lib/transport-clients.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    parts: { type: 'string', default: 'connect,relay,idle' },
    rounds: { type: 'string', default: '3' },
    window: { type: 'string', default: '1024' },
    'paced-rate': { type: 'string', default: '200' },
    'warmup-ms': { type: 'string', default: '500' },
    'measure-ms': { type: 'string', default: '2000' },
    'paced-ms': { type: 'string', default: '3000' },
    idle: { type: 'string', default: '500' },
    placement: { type: 'string', default: 'pinned' },
    'no-write': { type: 'boolean', default: false },
  },
});
const parts = args.parts.split(',');
const ROUNDS = Number(args.rounds);
const PACED_RATE = Number(args['paced-rate']);
const IDLE = Number(args.idle);
const HEADING = '## Signaling transports (issue 11)';
const place = placement(args.placement);
/** How long socket.io gets after 'connect' to finish (or fail) its upgrade. */
const UPGRADE_WAIT_MS = 3000;

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => (killAll(), process.exit(130)));
process.on('exit', killAll);

const TRANSPORTS = [
  { key: 'rp-websocket', name: 'rallypoint websocket', rp: 'websocket' },
  { key: 'rp-sse', name: 'rallypoint sse', rp: 'sse' },
  { key: 'rp-poll', name: 'rallypoint poll', rp: 'poll' },
  { key: 'sio-polling', name: 'socket.io polling', sio: 'polling' },
  { key: 'sio-websocket', name: 'socket.io websocket', sio: 'websocket' },
];

/** Proxy setups; `best`: the best transport that can work through it. */
const SETUPS = [
  { key: 'direct', name: 'direct', best: 'websocket' },
  { key: 'pass', name: 'nginx passing Upgrade', best: 'websocket' },
  { key: 'strip', name: 'nginx stripping Upgrade', best: 'sse' },
  { key: 'buffered', name: 'nginx stripping Upgrade, buffering forced on', best: 'poll' },
  { key: 'middlebox', name: 'middlebox silent after 101', best: 'sse' },
];

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
    rate: r.rate, p50: quantile(r.hist, 0.5), p99: quantile(r.hist, 0.99), max: r.maxMs,
    us: (r.servers * 1e6) / r.messages, genCores: r.genCores, others: r.others, disturbed: r.disturbed, leftOutS: r.leftOutS,
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

// ---- report -----------------------------------------------------------------------------

const NAME = Object.fromEntries(TRANSPORTS.map((t) => [t.key, t.name]));
const mostCommon = (xs) => [...xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map())].sort((a, b) => b[1] - a[1])[0]?.[0];

function connectReport(results) {
  const L = [];
  L.push(`Time from the call to connected, medians of ${ROUNDS} rounds (each round's values in brackets):`, '');
  L.push('| setup | rallypoint (default ladder) ms | ended on | why it moved | socket.io (defaults) ms to connect | on | upgrade |');
  L.push('|---|---:|---|---|---:|---|---|');
  const verdicts = [];
  for (const s of SETUPS) {
    const rs = results.filter((r) => r.setup === s.key);
    if (!rs.length) continue;
    const rp = rs.map((r) => r.rp);
    const sio = rs.map((r) => r.sio);
    const rpMs = median(rp.map((x) => x.ms));
    const ended = [...new Set(rp.map((x) => x.transport ?? 'none'))].join('/');
    const reasons = [...new Set(rp.map((x) => x.reason || '-'))].join('; ');
    // The upgrade's outcome: when it happened each round, its median time; else each distinct outcome.
    const upgrade = sio.every((x) => x.upgradeMs)
      ? `${mostCommon(sio.map((x) => x.upgrade))} at ${fmtInt(median(sio.map((x) => x.upgradeMs)))} ms`
      : [...new Set(sio.map((x) => (x.upgradeMs ? `${x.upgrade} at ${fmtInt(x.upgradeMs)} ms` : x.upgrade)))].join('; ');
    L.push(
      `| ${s.name} | ${fmtInt(rpMs)} (${rp.map((x) => fmtInt(x.ms)).join(', ')}) | ${ended} | ${reasons} | ` +
        `${fmtInt(median(sio.map((x) => x.ms)))} (${sio.map((x) => fmtInt(x.ms)).join(', ')}) | ${[...new Set(sio.map((x) => x.transport ?? 'none'))].join('/')} | ${upgrade} |`,
    );
    const worst = Math.max(...rp.map((x) => x.ms));
    verdicts.push({ s, ok: rp.every((x) => x.transport === s.best) && worst <= 3000, worst, ended });
  }
  L.push('');
  const bad = verdicts.filter((v) => !v.ok);
  L.push(
    `- Goal: connected on the best working transport within 3 s in every setup: **${bad.length ? 'NOT met' : 'met'}**` +
      (bad.length
        ? ` (${bad.map((v) => `${v.s.name}: on ${v.ended}, worst ${fmtInt(v.worst)} ms; best there is ${v.s.best}`).join('; ')}).`
        : ` (worst ${fmtInt(Math.max(...verdicts.map((v) => v.worst)))} ms).`),
  );
  return L;
}

function relayReport(relay, idle) {
  const med = {};
  for (const t of TRANSPORTS) {
    const rs = relay.filter((r) => r.key === t.key);
    if (!rs.length) continue;
    const pool = (phase) => (rs.some((r) => !r[phase].disturbed) ? rs.filter((r) => !r[phase].disturbed) : rs);
    const m = (phase, key) => median(pool(phase).map((r) => r[phase][key]));
    med[t.key] = { rounds: rs, sat: {}, paced: {} };
    for (const key of Object.keys(rs[0].saturated)) {
      if (typeof rs[0].saturated[key] === 'number') {
        med[t.key].sat[key] = m('saturated', key);
        med[t.key].paced[key] = m('paced', key);
      }
    }
  }
  const rss = Object.fromEntries(idle.map((x) => [x.key, x]));
  const L = [];
  L.push(
    `Relay A → server → B, medians of ${ROUNDS} rounds. Saturated: A keeps ${args.window} signals in flight (${Number(args['measure-ms']) / 1000} s measured after ${Number(args['warmup-ms']) / 1000} s warm-up); ` +
      `paced: ${fmtInt(PACED_RATE)} msg/s for ${Number(args['paced-ms']) / 1000} s, one-way latency. RSS: ${fmtInt(IDLE)} idle clients on a fresh server.`,
    '',
  );
  L.push('| transport | relayed msg/s | rounds, msg/s | server CPU µs/msg saturated | load generator cores | paced p50 ms | p99 ms | max ms | server CPU µs/msg paced | server RSS per idle client |');
  L.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of TRANSPORTS) {
    const x = med[t.key];
    if (!x) continue;
    const perRound = x.rounds.map((r) => `${fmtInt(r.saturated.rate)}${r.saturated.disturbed ? '*' : ''}`).join(', ');
    const idleKb = rss[t.key] ? `${fmt(rss[t.key].perClient / 1024, 1)} KiB` : 'n/a';
    L.push(
      `| ${t.name} | ${fmtInt(x.sat.rate)} | ${perRound} | ${fmt(x.sat.us, 1)} | ${fmt(x.sat.genCores, 2)}${x.sat.genCores > 0.9 ? ' (saturated)' : ''} | ` +
        `${fmt(x.paced.p50, 2)} | ${fmt(x.paced.p99, 2)} | ${fmt(x.paced.max, 1)} | ${fmt(x.paced.us, 0)} | ${idleKb} |`,
    );
  }
  if (!relay.length && idle.length) {
    for (const x of idle) L.push(`| ${NAME[x.key]} | | | | | | | | | ${fmt(x.perClient / 1024, 1)} KiB |`);
  }
  L.push('');
  const eio = med['sio-polling'];
  if (eio) {
    const ratios = ['rp-sse', 'rp-poll'].filter((k) => med[k]).map((k) => {
      const x = med[k];
      return (
        `- ${NAME[k]} vs engine.io polling: ${fmt(x.sat.rate / eio.sat.rate, 2)}x the msg/s, ${fmt(x.sat.us / eio.sat.us, 2)}x the server CPU per message saturated ` +
        `(${fmt(x.paced.us / eio.paced.us, 2)}x paced), p50 ${fmt(x.paced.p50, 2)} vs ${fmt(eio.paced.p50, 2)} ms (${fmt(x.paced.p50 / eio.paced.p50, 2)}x), ` +
        `p99 ${fmt(x.paced.p99, 2)} vs ${fmt(eio.paced.p99, 2)} ms (${fmt(x.paced.p99 / eio.paced.p99, 2)}x)` +
        (rss[k] && rss['sio-polling'] ? `, ${fmt(rss[k].perClient / rss['sio-polling'].perClient, 2)}x the RSS per idle client.` : '.')
      );
    });
    L.push(...ratios);
    const ahead = ['rp-sse', 'rp-poll'].every((k) => med[k] && med[k].sat.rate > eio.sat.rate && med[k].paced.p50 < eio.paced.p50 && med[k].paced.p99 < eio.paced.p99);
    L.push(`- Goal: SSE and long-poll ahead of engine.io polling in msg/s and latency (p50 and p99): **${ahead ? 'met' : 'NOT met'}**.`);
  }
  const ws = med['rp-websocket'];
  const sws = med['sio-websocket'];
  if (ws && sws) L.push(`- For scale, the WebSockets: rallypoint ${fmtInt(ws.sat.rate)} msg/s, ${fmt(ws.sat.us, 1)} µs/msg, p99 ${fmt(ws.paced.p99, 2)} ms; socket.io ${fmtInt(sws.sat.rate)} msg/s, ${fmt(sws.sat.us, 1)} µs/msg, p99 ${fmt(sws.paced.p99, 2)} ms.`);
  const bad = relay.filter((r) => r.saturated.errors || r.paced.errors || r.unexpected.length);
  L.push(
    bad.length
      ? `- WARNING: lost, reordered or unexpected frames in ${bad.map((r) => `${NAME[r.key]} round ${r.round + 1} (${r.unexpected.join(' | ') || `${r.saturated.errors + r.paced.errors} lost/out of order`})`).join('; ')}.`
      : '- Every signal arrived, in order, with no error or lost connection, on every transport.',
  );
  const leftOut = relay.reduce((n, r) => n + r.saturated.leftOutS + r.paced.leftOutS, 0);
  const others = median(relay.flatMap((r) => [r.saturated.others, r.paced.others]));
  L.push(
    `- Other jobs share this machine: slices of 500 ms during which processes outside this benchmark used more than ${FOREIGN_LIMIT_CORES} cores were left out ` +
      `(${fmt(leftOut, 1)} s this run; * marks a phase that never got enough quiet slices and counts every slice). Median other load during the slices used: ${fmt(others, 2)} cores.`,
  );
  return L;
}

function report(m, conn, relay, idle) {
  const L = [HEADING, ''];
  L.push('Command: `npm run bench:transports` (builds, then runs `node bench/transports.mjs`; the script rewrites this section).', '', machineLine(m), '');
  L.push(
    'Setup: servers in child processes, clients in the load generator process. rallypoint: `rallypoint serve` (dist/), clients `SignalingClient` (dist/signaling/client) with `ws` as its WebSocket and Node\'s fetch; ' +
      'socket.io 4 server (bench/lib/socketio-node.mjs, no adapter, transports polling and websocket) and socket.io-client. ' +
      'Proxy setups (bench/lib/nginx.mjs, Debian nginx, one worker, plain HTTP): *passing Upgrade* = the WebSocket lines of signaling/deploy/nginx.conf; ' +
      '*stripping Upgrade* = nginx\'s defaults (HTTP/1.0 upstream, hop-by-hop Upgrade dropped, buffering on, which a response turns off with `X-Accel-Buffering: no`); ' +
      '*buffering forced on* = the same plus `proxy_ignore_headers X-Accel-Buffering`; *middlebox* = bench/lib/middlebox.mjs, a TCP forwarder that goes silent after forwarding an `HTTP/1.1 101`. ' +
      `socket.io's connect is engine.io's: on polling, then the upgrade is tried; the table gives its outcome within ${UPGRADE_WAIT_MS / 1000} s of 'connect'. ` +
      'Signals: candidate-sized (~200 B payload), A → B in one room (socket.io: A emits naming B\'s socket id, the server does `io.to(id).emit`). ' +
      (place.pinned ? 'Saturation pinned (server on CPU 0, generator on the other CPU, `taskset`), paced phase unpinned. ' : `Placement: ${place.name}. `) +
      'Rounds interleaved, fresh server processes each round, order rotated. CPU: utime+stime from /proc/PID/stat of the server ÷ messages; RSS: VmRSS growth ÷ clients.',
    '',
  );
  if (conn.length) L.push(...connectReport(conn), '');
  if (relay.length || idle.length) L.push(...relayReport(relay, idle), '');
  return L.join('\n');
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
  const section = report(m, conn, relay, idle);
  console.log(`\n${section}`);
  if (!args['no-write']) console.log(`written to ${writeSection(root, /^## Signaling transports \(issue 11\)[ \t]*$/m, section)}`);
  console.log(`total ${fmt((performance.now() - began) / 1000, 0)} s`);
}

main().then(
  () => (killAll(), process.exit(0)),
  (err) => (console.error(err?.stack ?? err), killAll(), process.exit(1)),
);
