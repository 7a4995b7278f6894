#!/usr/bin/env node
/**
 * The peer library's per-message work without a network: two channels of one build joined by
 * an in-memory data channel pair (every `send` arrives at the other side in a microtask),
 * so what is timed is the channel code itself: encoding, framing, the reliable stream's
 * numbering, outbox, acknowledgements and reassembly, the unreliable stream's drop check.
 * Forked by bench/hotpaths.mjs once per build and round; prints one JSON line.
 *
 *   node bench/lib/channel-micro.mjs DIST_DIR [small-messages=200000] [bulk-messages=40000]
 *
 * DIST_DIR: a build's dist/ (this tree's, or another commit's for before/after). Works with
 * both the channel API before the peer library's split (`new Channel(config, flow, hooks)`,
 * hook `relay`) and after it (`createChannel(config, flow, hooks)`, hook `fallback`).
 */
import { pathToFileURL } from 'node:url';

const [dist, smallArg = '200000', bulkArg = '40000'] = process.argv.slice(2);
if (!dist) throw new Error('usage: channel-micro.mjs DIST_DIR [small] [bulk]');
const SMALL = Number(smallArg);
const BULK = Number(bulkArg);
const mod = (path) => import(pathToFileURL(`${dist}/${path}`).href);
const channels = await mod('peer/channels.js');
const legacy = channels.createChannel ? null : await mod('peer/channel.js');

// The same generous flow limits for every build: the window and queue bounds must not be what
// is measured (they are, by design, the same in both).
const FLOW = { highWaterMark: 1 << 30, lowWaterMark: 1 << 20, maxQueuedBytes: 1 << 30, dropAbove: 1 << 30 };

/** An RTCDataChannel pair in memory: open, never buffered, delivering in a microtask. */
function dataChannelPair() {
  const make = () => ({
    readyState: 'open',
    bufferedAmount: 0,
    bufferedAmountLowThreshold: 0,
    binaryType: 'blob',
    label: 'x',
    onmessage: null,
    onopen: null,
    onclose: null,
    onbufferedamountlow: null,
    close() {},
  });
  const a = make();
  const b = make();
  const wire = (from, to) => {
    from.send = (data) => {
      // A browser hands binary messages over as ArrayBuffers of their own.
      const payload = typeof data === 'string' ? data : data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
      queueMicrotask(() => to.onmessage?.({ data: payload }));
    };
  };
  wire(a, b);
  wire(b, a);
  return [a, b];
}

function channelPair(preset) {
  const [config] = channels.resolveChannels({ x: channels.CHANNEL_PRESETS[preset] });
  let received = 0;
  let onReceived = () => {};
  const hooks = (side) => ({
    maxMessageSize: () => 65_536,
    gate: () => null,
    message: () => {
      if (side === 'b') {
        received++;
        onReceived();
      }
    },
    error: (err) => {
      throw err;
    },
    open: () => {},
    lost: () => {},
    route: () => 'rtc',
    heard: () => {},
    fallback: () => null,
    relay: () => null,
  });
  const make = (side) => (legacy ? new legacy.Channel(config, FLOW, hooks(side)) : channels.createChannel(config, FLOW, hooks(side)));
  const a = make('a');
  const b = make('b');
  const [da, db] = dataChannelPair();
  a.attach(da);
  b.attach(db);
  return {
    a,
    close: () => {
      a.close();
      b.close();
    },
    /** Resolves when `n` messages in all have arrived at b. */
    until: (n) =>
      new Promise((resolve) => {
        if (received >= n) return resolve();
        onReceived = () => {
          if (received >= n) resolve();
        };
      }),
  };
}

/** ns per message to send `n` messages of `data` from a to b and see them all arrive. */
async function run(preset, data, n) {
  const pair = channelPair(preset);
  // Warm-up on the same pair, so the JIT has seen the path.
  for (let i = 0; i < Math.min(n, 2000); i++) await pair.a.send(data);
  await pair.until(Math.min(n, 2000));
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const sends = [];
  for (let i = 0; i < n; i++) {
    sends.push(pair.a.send(data));
    // Let deliveries and acknowledgements interleave with sending, as they would.
    if (i % 64 === 63) await Promise.all(sends.splice(0));
  }
  await Promise.all(sends);
  await pair.until(Math.min(n, 2000) + n);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  const cpu = process.cpuUsage(cpu0);
  pair.close();
  return { nsPerMessage: ns, cpuNsPerMessage: ((cpu.user + cpu.system) * 1000) / n };
}

const state = JSON.stringify({ x: 1234.5, y: 678.25, vx: -3.5, vy: 0.25, hp: 87, t: 123456789, name: 'player-1' }).padEnd(200, ' ');
const bulk = new Uint8Array(16 * 1024).fill(7);
const results = {
  reliableSmall: await run('reliable', state, SMALL),
  reliableBulk: await run('reliable', bulk, BULK),
  unreliableSmall: await run('unreliable', state, SMALL),
};
process.stdout.write(`${JSON.stringify(results)}\n`);
process.exit(0);
