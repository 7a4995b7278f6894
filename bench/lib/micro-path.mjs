#!/usr/bin/env node
/**
 * The server's per-message cost without sockets: feeds signal frames straight into
 * SignalingServer's message handler with fake WebSockets whose send() only counts, and
 * compares it with the bare relay's parse / look up / stamp / stringify. Used to find
 * where rallypoint spends time beyond the bare relay (see BENCHMARKS.md).
 *   node bench/lib/micro-path.mjs [messages=400000]
 */
import { createServer } from 'node:http';
import { Connection } from '../../dist/signaling/server/connection.js';
import { attachSignaling } from '../../dist/signaling/server/index.js';

const N = Number(process.argv[2] ?? 400_000);
const CANDIDATE =
  '"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.5 rport 46154 generation 0 ufrag sTjA network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"sTjA"';

function fakeWs() {
  return {
    readyState: 1,
    sent: 0,
    bytes: 0,
    send(frame) {
      this.sent++;
      this.bytes += frame.length;
    },
    close() {},
    on() {},
    terminate() {},
  };
}

async function ours() {
  const http = createServer();
  const server = attachSignaling(http, {
    logger: false,
    limits: { messagesPerSecond: 1e9, messageBurst: 1e9, maxConnectionsPerIp: 0 },
  });
  const mk = () => new Connection(fakeWs(), { headers: {} }, '127.0.0.1', {}, Date.now(), server.options.limits);
  const a = mk();
  const b = mk();
  const onMessage = (conn, buf) => server.onMessage(conn, buf, false);
  onMessage(a, Buffer.from('{"type":"join","room":"r"}'));
  await new Promise((r) => setTimeout(r, 10));
  onMessage(b, Buffer.from('{"type":"join","room":"r"}'));
  await new Promise((r) => setTimeout(r, 10));
  const to = b.session.id;
  const frames = Array.from({ length: 1024 }, (_, i) => Buffer.from(`{"type":"signal","to":"${to}","data":{${CANDIDATE},"seq":${i},"t":1234.5678}}`));
  const run = async (n) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      onMessage(a, frames[i & 1023]);
      // Several frames per socket read in practice; let the promise chain drain now and then.
      if ((i & 15) === 15) await null;
    }
    await new Promise((r) => setImmediate(r));
    return Number(process.hrtime.bigint() - start) / n;
  };
  await run(N / 4);
  const ns = await run(N);
  if (b.ws.sent < N) throw new Error(`only ${b.ws.sent} frames delivered`);
  await server.close({ timeoutMs: 10 });
  return ns;
}

async function bare() {
  const peers = new Map();
  const a = fakeWs();
  const b = fakeWs();
  peers.set('pa', a);
  peers.set('pb', b);
  const onMessage = (id, _ws, data) => {
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (msg.type === 'signal') {
      const target = peers.get(msg.to);
      if (target) target.send(JSON.stringify({ type: 'signal', from: id, data: msg.data }));
    }
  };
  const frames = Array.from({ length: 1024 }, (_, i) => Buffer.from(`{"type":"signal","to":"pb","data":{${CANDIDATE},"seq":${i},"t":1234.5678}}`));
  const run = async (n) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      onMessage('pa', a, frames[i & 1023]);
      if ((i & 15) === 15) await null;
    }
    await new Promise((r) => setImmediate(r));
    return Number(process.hrtime.bigint() - start) / n;
  };
  await run(N / 4);
  return run(N);
}

const results = { ours: [], bare: [] };
for (let i = 0; i < 3; i++) {
  results.bare.push(await bare());
  results.ours.push(await ours());
}
const med = (xs) => [...xs].sort((x, y) => x - y)[1];
console.log(`per message, no sockets (median of 3): bare ${(med(results.bare) / 1000).toFixed(2)} µs, ours ${(med(results.ours) / 1000).toFixed(2)} µs`);
