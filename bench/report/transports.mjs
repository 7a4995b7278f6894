/**
 * The "## Signaling transports" section of BENCHMARKS.md, from the results of
 * bench/transports.mjs (test-artifacts/bench/transports.json).
 */
import { fmt, fmtInt } from '../lib/format.mjs';
import { machineLine } from '../lib/machine.mjs';
import { headline } from '../lib/results.mjs';
import { FOREIGN_LIMIT_CORES } from '../lib/slices.mjs';
import { median } from '../lib/stats.mjs';

export const HEADING = '## Signaling transports';
export const SUMMARY = 'Signaling transports';

export const TRANSPORTS = [
  { key: 'rp-websocket', name: 'rallypoint websocket', rp: 'websocket' },
  { key: 'rp-sse', name: 'rallypoint sse', rp: 'sse' },
  { key: 'rp-poll', name: 'rallypoint poll', rp: 'poll' },
  { key: 'sio-polling', name: 'socket.io polling', sio: 'polling' },
  { key: 'sio-websocket', name: 'socket.io websocket', sio: 'websocket' },
];

/** Proxy setups; `best`: the best transport that can work through it. */
export const SETUPS = [
  { key: 'direct', name: 'direct', best: 'websocket' },
  { key: 'pass', name: 'nginx passing Upgrade', best: 'websocket' },
  { key: 'strip', name: 'nginx stripping Upgrade', best: 'sse' },
  { key: 'buffered', name: 'nginx stripping Upgrade, buffering forced on', best: 'poll' },
  { key: 'middlebox', name: 'middlebox silent after 101', best: 'sse' },
];

const NAME = Object.fromEntries(TRANSPORTS.map((t) => [t.key, t.name]));

const mostCommon = (xs) => [...xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map())].sort((a, b) => b[1] - a[1])[0]?.[0];

function connectReport(results, { rounds: ROUNDS }, headlines, date) {
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
  headlines.push(
    headline(
      SUMMARY,
      'connected on the best working transport, every proxy setup (worst)',
      `${fmtInt(Math.max(...verdicts.map((v) => v.worst)))} ms`,
      'within 3 s, on the best transport',
      bad.length === 0,
      date,
    ),
  );
  L.push(
    `- Goal: connected on the best working transport within 3 s in every setup: **${bad.length ? 'NOT met' : 'met'}**` +
      (bad.length
        ? ` (${bad.map((v) => `${v.s.name}: on ${v.ended}, worst ${fmtInt(v.worst)} ms; best there is ${v.s.best}`).join('; ')}).`
        : ` (worst ${fmtInt(Math.max(...verdicts.map((v) => v.worst)))} ms).`),
  );
  return L;
}

function relayReport(relay, idle, config, headlines, date) {
  const { rounds: ROUNDS, pacedRate: PACED_RATE, idle: IDLE, window, warmupMs, measureMs, pacedMs } = config;
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
    `Relay A → server → B, medians of ${ROUNDS} rounds. Saturated: A keeps ${window} signals in flight (${measureMs / 1000} s measured after ${warmupMs / 1000} s warm-up); ` +
      `paced: ${fmtInt(PACED_RATE)} msg/s for ${pacedMs / 1000} s, one-way latency. RSS: ${fmtInt(IDLE)} idle clients on a fresh server.`,
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
    const ratios = ['rp-sse', 'rp-poll']
      .filter((k) => med[k])
      .map((k) => {
        const x = med[k];
        return (
          `- ${NAME[k]} vs engine.io polling: ${fmt(x.sat.rate / eio.sat.rate, 2)}x the msg/s, ${fmt(x.sat.us / eio.sat.us, 2)}x the server CPU per message saturated ` +
          `(${fmt(x.paced.us / eio.paced.us, 2)}x paced), p50 ${fmt(x.paced.p50, 2)} vs ${fmt(eio.paced.p50, 2)} ms (${fmt(x.paced.p50 / eio.paced.p50, 2)}x), ` +
          `p99 ${fmt(x.paced.p99, 2)} vs ${fmt(eio.paced.p99, 2)} ms (${fmt(x.paced.p99 / eio.paced.p99, 2)}x)` +
          (rss[k] && rss['sio-polling'] ? `, ${fmt(rss[k].perClient / rss['sio-polling'].perClient, 2)}x the RSS per idle client.` : '.')
        );
      });
    L.push(...ratios);
    for (const k of ['rp-sse', 'rp-poll'].filter((x) => med[x])) {
      const x = med[k];
      const ok = x.sat.rate > eio.sat.rate && x.paced.p50 < eio.paced.p50 && x.paced.p99 < eio.paced.p99;
      headlines.push(
        headline(
          SUMMARY,
          `${NAME[k]} / engine.io polling: msg/s; p50, p99 paced`,
          `${fmt(x.sat.rate / eio.sat.rate, 2)}x; ${fmt(x.paced.p50 / eio.paced.p50, 2)}x, ${fmt(x.paced.p99 / eio.paced.p99, 2)}x`,
          'msg/s > 1x, latencies < 1x',
          ok,
          date,
        ),
      );
    }
    const ahead = ['rp-sse', 'rp-poll'].every((k) => med[k] && med[k].sat.rate > eio.sat.rate && med[k].paced.p50 < eio.paced.p50 && med[k].paced.p99 < eio.paced.p99);
    L.push(`- Goal: SSE and long-poll ahead of engine.io polling in msg/s and latency (p50 and p99): **${ahead ? 'met' : 'NOT met'}**.`);
  }
  const ws = med['rp-websocket'];
  const sws = med['sio-websocket'];
  if (ws && sws)
    L.push(
      `- For scale, the WebSockets: rallypoint ${fmtInt(ws.sat.rate)} msg/s, ${fmt(ws.sat.us, 1)} µs/msg, p99 ${fmt(ws.paced.p99, 2)} ms; socket.io ${fmtInt(sws.sat.rate)} msg/s, ${fmt(sws.sat.us, 1)} µs/msg, p99 ${fmt(sws.paced.p99, 2)} ms.`,
    );
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

/** The section and the summary rows, from a results file of bench/transports.mjs. */
export function render({ machine: m, config, connect: conn, relay, idle }) {
  const { upgradeWaitMs: UPGRADE_WAIT_MS, placement: place } = config;
  const headlines = [];
  const L = [HEADING, ''];
  L.push('Command: `npm run bench:transports` (builds, then runs `node bench/transports.mjs`; the script rewrites this section).', '', machineLine(m), '');
  L.push(
    "Setup: servers in child processes, clients in the load generator process. rallypoint: `rallypoint serve` (dist/), clients `SignalingClient` (dist/signaling/client) with `ws` as its WebSocket and Node's fetch; " +
      'socket.io 4 server (bench/lib/socketio-node.mjs, no adapter, transports polling and websocket) and socket.io-client. ' +
      'Proxy setups (bench/lib/nginx.mjs, Debian nginx, one worker, plain HTTP): *passing Upgrade* = the WebSocket lines of signaling/deploy/nginx.conf; ' +
      "*stripping Upgrade* = nginx's defaults (HTTP/1.0 upstream, hop-by-hop Upgrade dropped, buffering on, which a response turns off with `X-Accel-Buffering: no`); " +
      '*buffering forced on* = the same plus `proxy_ignore_headers X-Accel-Buffering`; *middlebox* = bench/lib/middlebox.mjs, a TCP forwarder that goes silent after forwarding an `HTTP/1.1 101`. ' +
      `socket.io's connect is engine.io's: on polling, then the upgrade is tried; the table gives its outcome within ${UPGRADE_WAIT_MS / 1000} s of 'connect'. ` +
      "Signals: candidate-sized (~200 B payload), A → B in one room (socket.io: A emits naming B's socket id, the server does `io.to(id).emit`). " +
      (place.pinned ? 'Saturation pinned (server on CPU 0, generator on the other CPU, `taskset`), paced phase unpinned. ' : `Placement: ${place.name}. `) +
      'Rounds interleaved, fresh server processes each round, order rotated. CPU: utime+stime from /proc/PID/stat of the server ÷ messages; RSS: VmRSS growth ÷ clients.',
    '',
  );
  if (conn.length) L.push(...connectReport(conn, config, headlines, m.date), '');
  if (relay.length || idle.length) L.push(...relayReport(relay, idle, config, headlines, m.date), '');
  return { section: L.join('\n'), headlines };
}
