#!/usr/bin/env node
import dgram from 'node:dgram';
/**
 * Micro-benchmarks of the embedded TURN server's per-packet work (BENCHMARKS.md, "TURN
 * relay: where the time goes", "What changed" 2-6): the way node-turn / the first version of
 * turn/server.ts did it against the way it is done now, one line each, in ns per packet.
 * Not a test; needs `npm run build`. Noisy on a shared machine: each pair is measured in
 * alternation, REPS times, and the median printed.
 *
 *   node bench/lib/turn-hotpath.mjs [policy|send|channel|client|sendparse ...]
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(root, 'package.json'));
const { PeerPolicy } = await import(join(root, 'dist', 'turn', 'policy.js'));
const NtAddress = require('node-turn/lib/address.js');
const NtTransport = require('node-turn/lib/transport.js');

const REPS = 7;
const which = new Set(process.argv.slice(2));
const want = (name) => which.size === 0 || which.has(name);

/** Median ns per call of each function, measured in alternation. */
function compare(label, n, fns) {
  const times = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
  for (const f of Object.values(fns)) for (let i = 0; i < n / 10; i++) f(i); // warm up
  for (let r = 0; r < REPS; r++) {
    for (const [k, f] of Object.entries(fns)) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) f(i);
      times[k].push(Number(process.hrtime.bigint() - t0) / n);
    }
  }
  const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  console.log(
    `${label}: ${Object.entries(times)
      .map(([k, t]) => `${k} ${med(t).toFixed(0)} ns`)
      .join(', ')}`,
  );
}

let sink = 0;

if (want('policy')) {
  // Suggestion 1: PeerPolicy.allows on every relayed packet, now once per permission.
  const allowList = new PeerPolicy({ allow: ['127.0.0.0/8'] });
  const defaults = new PeerPolicy();
  const perms = new Map([
    ['127.0.0.1', { expiry: Infinity }],
    ['8.8.8.8', { expiry: Infinity }],
    ['2606:4700:4700::1111', { expiry: Infinity }],
  ]);
  const now = Date.now();
  compare('a. policy per packet, 127.0.0.1 under the bench allow list', 200_000, {
    'allows()': () => (sink += allowList.allows('127.0.0.1') ? 1 : 0),
    'permission lookup only': () => (sink += perms.get('127.0.0.1').expiry > now ? 1 : 0),
  });
  compare('a. policy per packet, public IPv4 under the default deny list', 200_000, {
    'allows()': () => (sink += defaults.allows('8.8.8.8') ? 1 : 0),
    'permission lookup only': () => (sink += perms.get('8.8.8.8').expiry > now ? 1 : 0),
  });
  compare('a. policy per packet, public IPv6 under the default deny list', 200_000, {
    'allows()': () => (sink += defaults.allows('2606:4700:4700::1111') ? 1 : 0),
    'permission lookup only': () => (sink += perms.get('2606:4700:4700::1111').expiry > now ? 1 : 0),
  });
}

if (want('send')) {
  // Suggestion 2: ChannelData to the client, copied with Buffer.concat or sent as a list.
  const rx = dgram.createSocket('udp4');
  await new Promise((r) => rx.bind(0, '127.0.0.1', r));
  rx.on('message', () => {});
  const tx = dgram.createSocket('udp4');
  await new Promise((r) => tx.bind(0, '127.0.0.1', r));
  const port = rx.address().port;
  const data = Buffer.alloc(202, 1); // 202: the padded case
  const pad = Buffer.alloc(2);
  const N = 20_000;
  const times = { concat: [], list: [] };
  const run = async (kind) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) {
      const header = Buffer.allocUnsafe(4);
      header.writeUInt16BE(0x4000, 0);
      header.writeUInt16BE(data.length, 2);
      if (kind === 'concat') tx.send(Buffer.concat([header, data, Buffer.alloc(2)]), port, '127.0.0.1');
      else tx.send([header, data, pad], port, '127.0.0.1');
      if (i % 256 === 255) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setImmediate(r));
    times[kind].push(Number(process.hrtime.bigint() - t0) / N);
  };
  for (let r = 0; r < REPS; r++) {
    await run('concat');
    await run('list');
  }
  const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  console.log(`b. ChannelData to the client, 202 B, send incl. syscall: Buffer.concat ${med(times.concat).toFixed(0)} ns, [header, data, pad] ${med(times.list).toFixed(0)} ns`);
  const h = Buffer.allocUnsafe(4);
  compare('b. the same without the syscall (the copy alone)', 200_000, {
    'Buffer.alloc + concat': () => (sink += Buffer.concat([h, data, Buffer.alloc(2)]).length),
    '[header, data, pad]': () => (sink += [h, data, pad].length),
  });
  tx.close();
  rx.close();
}

if (want('channel')) {
  // Suggestion 3: the channel of a peer datagram's source.
  const { RelayState } = await import(join(root, 'dist', 'turn', 'relay-state.js'));
  const NtAllocationProto = require('node-turn/lib/allocation.js').prototype;
  for (const bindings of [1, 8]) {
    const fake = { channelBindings: {} };
    const state = new RelayState();
    const now = Date.now();
    for (let i = 0; i < bindings; i++) {
      fake.channelBindings[0x4000 + i] = new NtAddress('127.0.0.1', 40000 + i);
      state.bind(0x4000 + i, '127.0.0.1', 40000 + i, now);
    }
    const port = 40000 + bindings - 1;
    compare(`c. channel lookup per peer datagram, ${bindings} binding(s)`, 200_000, {
      'new Address + getPeerChannelNumber': () => (sink += NtAllocationProto.getPeerChannelNumber.call(fake, new NtAddress('127.0.0.1', port))),
      'permission + peerChannel Maps': () => (sink += state.peerChannel(state.permission('127.0.0.1', now), port, now).number),
    });
  }
}

if (want('client')) {
  // Suggestion 4: the allocation of a client ChannelData's source.
  const dst = new NtAddress('127.0.0.1', 3478);
  const allocations = {};
  const byClient = new Map();
  for (let i = 0; i < 24; i++) {
    const src = new NtAddress('127.0.0.1', 50000 + i);
    allocations[new NtTransport(0x11, src, dst, null).get5Tuple()] = { i };
    let m = byClient.get('127.0.0.1');
    if (!m) {
      m = new Map();
      byClient.set('127.0.0.1', m);
    }
    m.set(50000 + i, { i });
  }
  const rinfo = { address: '127.0.0.1', port: 50017 };
  compare('d. allocation of a client ChannelData, 24 allocations', 200_000, {
    'Address + Transport + get5Tuple': () => (sink += allocations[new NtTransport(0x11, new NtAddress(rinfo.address, rinfo.port), dst, null).get5Tuple()].i),
    'Map by address, then port': () => (sink += byClient.get(rinfo.address).get(rinfo.port).i),
  });
}

if (want('sendparse')) {
  // Defect 6, second half: a client Send indication read by node-turn's Message.read, or by
  // turn/codec.ts readSendIndication (the fast path in turn/gate.ts onPacket).
  const { encode, encodeXorAddress, readSendIndication, StunAttr, StunClass, StunMethod } = await import(join(root, 'dist', 'turn', 'codec.js'));
  const NtMessage = require('node-turn/lib/message.js');
  const fakeServer = { debugLevel: 100, debug() {}, authentification: { credentials: {} }, realm: 'r' };
  const tid = Buffer.alloc(12, 7);
  const buf = encode({
    method: StunMethod.send,
    cls: StunClass.indication,
    transactionId: tid,
    attributes: [
      { type: StunAttr.xorPeerAddress, value: encodeXorAddress({ address: '127.0.0.1', port: 40000 }, tid) },
      { type: StunAttr.data, value: Buffer.alloc(200, 1) },
    ],
  });
  const transport = new NtTransport(0x11, new NtAddress('127.0.0.1', 50000), new NtAddress('127.0.0.1', 3478), null);
  compare('e. reading a Send indication (200 B)', 100_000, {
    'node-turn Message.read': () => {
      const m = new NtMessage(fakeServer, transport);
      m.read(buf);
      sink += m.getAttribute('data').length;
    },
    readSendIndication: () => (sink += readSendIndication(buf).data.length),
  });
}

if (sink === -1) console.log(sink);
