#!/usr/bin/env node
/**
 * Micro benchmark: signals/s through one connection of the signaling server after an async
 * handler overlapped a message of that connection. A store whose join answers on a later
 * turn (like a networked store) and a signal sent right behind the join put the connection
 * on its message chain; the build under test either returns to synchronous dispatch once the
 * chain is done (fixed) or keeps every later frame on the promise path (before the fix).
 *
 *   node bench/pending-cliff.mjs [--dist dist] [--signals 200000] [--window 256] [--rounds 3] [--overlap yes|no]
 *
 * Prints one JSON line per round: { dist, signalsPerSecond, cpuMicrosPerSignal } (also saved in
 * test-artifacts/bench/pending-cliff.json, or --json FILE) (CPU of the
 * whole process, clients included: they do the same work for every build, so the difference
 * is the server's). Server and both clients share this process (loopback): compare builds
 * side by side in one run, not across machines.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { benchArgs } from './lib/args.mjs';
import { saveResults } from './lib/results.mjs';

const args = benchArgs({
  dist: { type: 'string', default: 'dist' },
  signals: { type: 'string', default: '200000' },
  window: { type: 'string', default: '256' },
  rounds: { type: 'string', default: '3' },
  // no: the first signal waits for the welcome, so no message ever queues behind the
  // async join (the chain has one tail, which clears it, on every build).
  overlap: { type: 'string', default: 'yes' },
});
const dist = resolve(args.dist);
const { listenSignaling, MemoryRoomStore } = await import(pathToFileURL(`${dist}/signaling/server/index.js`).href);

class AsyncJoinStore extends MemoryRoomStore {
  async join(room, peer, sink) {
    await new Promise((r) => setImmediate(r));
    return super.join(room, peer, sink);
  }
}

const open = (url) =>
  new Promise((res, rej) => {
    const ws = new WebSocket(url, ['rallypoint.v1']);
    ws.once('open', () => res(ws));
    ws.once('error', rej);
  });
const nextOf = (ws, type) =>
  new Promise((res) => {
    const on = (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === type) {
        ws.off('message', on);
        res(m);
      }
    };
    ws.on('message', on);
  });

async function round() {
  const big = 1e9;
  const srv = await listenSignaling({
    port: 0,
    host: '127.0.0.1',
    logger: false,
    store: new AsyncJoinStore({ maxPeersPerRoom: 8, maxRooms: 8 }),
    limits: { messagesPerSecond: big, messageBurst: big, abuseThreshold: big },
  });
  const a = await open(srv.wsUrl);
  const aWelcome = nextOf(a, 'welcome');
  a.send(JSON.stringify({ type: 'join', room: 'r' }));
  const aId = (await aWelcome).id;
  const b = await open(srv.wsUrl);
  const bWelcome = nextOf(b, 'welcome');
  // The join goes async; the signal right behind it queues on the connection's chain.
  b.send(JSON.stringify({ type: 'join', room: 'r' }));
  if (args.overlap === 'no') await bWelcome;
  b.send(JSON.stringify({ type: 'signal', to: aId, data: { warm: true } }));
  await bWelcome;
  await nextOf(a, 'signal');

  const total = Number(args.signals);
  const window = Number(args.window);
  const frame = JSON.stringify({ type: 'signal', to: aId, data: { candidate: 'candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host', sdpMid: '0' } });
  let sent = 0;
  let received = 0;
  const done = new Promise((res) => {
    a.on('message', () => {
      received++;
      if (received === total) res();
      else pump();
    });
  });
  function pump() {
    while (sent < total && sent - received < window) {
      b.send(frame);
      sent++;
    }
  }
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  pump();
  await done;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  a.terminate();
  b.terminate();
  await srv.close({ timeoutMs: 100 });
  return { signalsPerSecond: Math.round(total / seconds), cpuMicrosPerSignal: +((cpu.user + cpu.system) / total).toFixed(2) };
}

const rounds = [];
for (let i = 0; i < Number(args.rounds); i++) {
  const r = { dist: args.dist, overlap: args.overlap, ...(await round()) };
  rounds.push(r);
  console.log(JSON.stringify(r));
}
console.error(`results: ${saveResults('pending-cliff', { name: 'pending-cliff', rounds }, args.json)}`);
