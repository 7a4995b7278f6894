/**
 * One benchmarked server in a process of its own (forked by bench/signaling.mjs).
 * argv[2]: ours | bare | peerjs (| ours-nocoalesce | ours@DIST_DIR, for comparisons). Talks to the parent over IPC:
 *   -> { type: 'ready', port, pid }
 *   <- { cmd: 'usage', gc? }  -> { type: 'usage', rss, heapUsed, external, cpuUs, wallMs, connections? }
 * Exits when the parent goes away or sends { cmd: 'exit' }.
 */

import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Session } from 'node:inspector';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeHeapSnapshot } from 'node:v8';
import { WebSocketServer } from 'ws';

const kind = process.argv[2];
const HUGE = 1_000_000_000;

if (!process.send) {
  console.error('server-child must be forked with an IPC channel');
  process.exit(2);
}
process.on('disconnect', () => process.exit(0));

/** `dist` is ../../dist, or another build's dist/ given as `ours@/path/to/dist` (before/after comparisons). */
async function startOurs(dist = new URL('../../dist/', import.meta.url).href) {
  const { listenSignaling } = await import(new URL('signaling/server/index.js', dist.endsWith('/') ? dist : `${dist}/`).href);
  const listening = await listenSignaling({
    port: 0,
    host: '127.0.0.1',
    logger: false,
    limits: {
      // The rate limiter and connection caps are switched out of the way: the benchmark
      // measures relaying with full validation, not the limiter refusing messages.
      messagesPerSecond: HUGE,
      messageBurst: HUGE,
      relayMessagesPerSecond: HUGE,
      relayMessageBurst: HUGE,
      relayBytesPerSecond: HUGE,
      relayBytesBurst: HUGE,
      maxConnectionsPerIp: 0,
      maxConnections: 100_000,
      maxRooms: 100_000,
      maxPeersPerRoom: 32,
    },
  });
  return { port: listening.port, connections: () => listening.server.connectionCount };
}

/**
 * The practical limit: a relay with the same wire format and nothing else. Parse JSON,
 * look the target up by id in a Map, stamp `from`, stringify, send. No rooms, no
 * validation beyond JSON.parse, no limits, no metrics.
 */
async function startBare() {
  const http = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server: http, path: '/ws', perMessageDeflate: false, clientTracking: false, maxPayload: 64 * 1024 });
  const peers = new Map();
  let next = 0;
  wss.on('connection', (ws) => {
    const id = `p${(next++).toString(36)}`;
    peers.set(id, ws);
    ws.on('message', (data) => {
      let msg;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (msg.type === 'signal') {
        const target = peers.get(msg.to);
        if (target) target.send(JSON.stringify({ type: 'signal', from: id, data: msg.data }));
      } else if (msg.type === 'join') {
        ws.send(JSON.stringify({ type: 'welcome', id, room: msg.room, peers: [] }));
      }
    });
    ws.on('close', () => peers.delete(id));
    ws.on('error', () => {});
  });
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
  return { port: http.address().port, connections: () => peers.size };
}

/** PeerJS server 1.0.2 with its concurrent-user limit raised (it has no rate limit). */
async function startPeerjs() {
  const { PeerServer } = await import('peer');
  const server = await new Promise((resolve) => {
    PeerServer({ port: 0, host: '127.0.0.1', key: 'peerjs', path: '/', concurrent_limit: HUGE, alive_timeout: 3_600_000 }, resolve);
  });
  return { port: server.address().port, connections: () => undefined };
}

/**
 * For comparison, not in the default run (`--servers ours,ours-nocoalesce,bare`): our
 * server with write coalescing switched off (Connection.coalesce patched out from here),
 * i.e. one socket write per frame like the bare relay and PeerJS.
 */
async function startOursNoCoalesce() {
  const { Connection } = await import('../../dist/signaling/server/connection.js');
  if (typeof Connection.prototype.coalesce !== 'function') throw new Error('Connection.coalesce not found');
  Connection.prototype.coalesce = function noCoalesce() {};
  return startOurs();
}

const starters = { ours: startOurs, 'ours-nocoalesce': startOursNoCoalesce, bare: startBare, peerjs: startPeerjs };
let started;
if (kind.startsWith('ours@')) started = await startOurs(pathToFileURL(resolve(kind.slice(5))).href);
else if (starters[kind]) started = await starters[kind]();
else throw new Error(`unknown server kind ${kind}`);

let profiler = null;
process.on('message', (m) => {
  if (m?.cmd === 'usage') {
    if (m.gc && typeof globalThis.gc === 'function') {
      globalThis.gc();
      globalThis.gc();
    }
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    process.send({
      type: 'usage',
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      external: mem.external,
      cpuUs: cpu.user + cpu.system,
      wallMs: performance.now(),
      connections: started.connections(),
    });
  } else if (m?.cmd === 'profile-start') {
    // CPU profile of exactly the measured seconds (bench/signaling.mjs --cpu-prof DIR).
    profiler ??= new Session();
    profiler.connect();
    profiler.post('Profiler.enable', () => profiler.post('Profiler.start', () => process.send({ type: 'profile-started' })));
  } else if (m?.cmd === 'profile-stop') {
    profiler.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(m.file, JSON.stringify(result.profile));
      profiler.disconnect();
      process.send({ type: 'profile-stopped', file: err ? null : m.file, error: err ? String(err) : undefined });
    });
  } else if (m?.cmd === 'heap-snapshot') {
    // For digging into memory per connection: node -e, or a one-off driver, sends this.
    process.send({ type: 'heap-snapshot', file: writeHeapSnapshot(m.file) });
  } else if (m?.cmd === 'exit') {
    process.exit(0);
  }
});

process.send({ type: 'ready', port: started.port, pid: process.pid });
