/**
 * The load of bench/cluster.mjs: one sender A and one receiver B, in this process (so the
 * send time stamped in the payload and the receive time come from one clock), speaking
 * rallypoint.v1 over raw `ws` (to rallypoint or the bare relays) or socket.io (websocket
 * transport only), or plain Redis pub/sub. A sends candidate-sized signals naming B; the
 * servers deliver them to B, wherever B is. drive() runs the load and measures it.
 */
import { createClient } from 'redis';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { SUBPROTOCOL } from '../../dist/signaling/protocol/index.js';
import { sleep } from './children.mjs';
import { merge, newHist, record } from './hist.mjs';
import { cpuBetween, cpuSnapshot } from './proc-cpu.mjs';
import { measureSlices, sumOf } from './slices.mjs';

/** The candidate bench/lib/load-worker.mjs sends: a trickle-ICE candidate, ~200 bytes. */
const CANDIDATE =
  '"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.5 rport 46154 generation 0 ufrag sTjA network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"sTjA"';
export const CANDIDATE_OBJECT = JSON.parse(`{${CANDIDATE}}`);

const WS_OPTIONS = { perMessageDeflate: false, skipUTF8Validation: true, generateMask: (mask) => mask.fill(0) };

/**
 * Frames A sends within one tick go out in one socket write (corked now, uncorked on the
 * next tick), for both protocols alike: the generator stays cheap per message, and every
 * server sees several frames per TCP read.
 */
const corked = new WeakSet();
function cork(socket) {
  if (corked.has(socket)) return;
  corked.add(socket);
  socket.cork();
  process.nextTick(() => {
    corked.delete(socket);
    socket.uncork();
  });
}

function wsJoin(url, room) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [SUBPROTOCOL], WS_OPTIONS);
    ws.once('error', reject);
    const onMessage = (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.type === 'welcome') {
        ws.off('message', onMessage);
        resolve({ ws, id: msg.id });
      } else if (msg.type === 'error') reject(new Error(`join refused: ${data}`));
    };
    ws.on('message', onMessage);
    ws.once('open', () => ws.send(JSON.stringify({ type: 'join', room })));
  });
}

/**
 * A on `urlA`, B on `urlB`, one room. Returns { send(seq, t), onReceive(fn), unexpected, close() }.
 * Resolves once A has seen B join (so B is known wherever A is).
 */
export async function rallypointPair(urlA, urlB, room) {
  const a = await wsJoin(urlA, room);
  const joined = new Promise((resolve) => {
    a.ws.on('message', (data) => {
      if (data.toString().includes('"peer-joined"')) resolve();
    });
  });
  const b = await wsJoin(urlB, room);
  await joined;
  let onReceive = () => {};
  const unexpected = [];
  const start = `{"type":"signal","from":${JSON.stringify(a.id)},`;
  b.ws.on('message', (data) => {
    // As bench/lib/load-worker.mjs: seq and t read from the tail of the frame, every 256th
    // frame parsed and checked in full, to keep the generator cheap per message.
    const text = data.toString('latin1');
    if (!text.startsWith(start)) {
      if (!text.includes('"peer-joined"') && unexpected.length < 5) unexpected.push(text.slice(0, 200));
      return;
    }
    const i = text.lastIndexOf('"seq":');
    const j = text.indexOf(',', i);
    const seq = Number(text.slice(i + 6, j));
    if ((seq & 255) === 0) {
      const msg = JSON.parse(text);
      if (msg.data?.seq !== seq || msg.data?.sdpMid !== '0' || typeof msg.data?.candidate !== 'string') unexpected.push(`bad frame: ${text.slice(0, 200)}`);
    }
    onReceive(seq, Number(text.slice(j + 5, text.length - 2)));
  });
  a.ws.on('message', (data) => {
    const text = data.toString();
    if (!text.includes('"peer-joined"') && unexpected.length < 5) unexpected.push(text.slice(0, 200));
  });
  const prefix = `{"type":"signal","to":${JSON.stringify(b.id)},"data":{${CANDIDATE},"seq":`;
  return {
    send: (seq, t) => {
      cork(a.ws._socket);
      a.ws.send(`${prefix}${seq},"t":${t}}}`);
    },
    onReceive: (fn) => (onReceive = fn),
    unexpected,
    close: () =>
      Promise.all(
        [a, b].map(
          ({ ws }) =>
            new Promise((r) => {
              ws.once('close', r);
              ws.close();
            }),
        ),
      ),
  };
}

function sioConnect(url) {
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

/** The same pair on socket.io: A emits `sig` naming B's socket id; B gets `msg`. */
export async function socketIoPair(urlA, urlB) {
  const [a, b] = await Promise.all([sioConnect(urlA), sioConnect(urlB)]);
  let onReceive = () => {};
  const unexpected = [];
  b.on('msg', (from, data) => {
    if (from === a.id) onReceive(data.seq, data.t);
    else if (unexpected.length < 5) unexpected.push(`msg from ${from}`);
  });
  for (const s of [a, b]) s.on('disconnect', (reason) => unexpected.push(`disconnect: ${reason}`));
  const to = b.id;
  return {
    send: (seq, t) => {
      // engine.io-client's websocket transport keeps its `ws` WebSocket in transport.ws
      cork(a.io.engine.transport.ws._socket);
      a.emit('sig', to, { ...CANDIDATE_OBJECT, seq, t });
    },
    onReceive: (fn) => (onReceive = fn),
    unexpected,
    close: async () => {
      for (const s of [a, b]) s.disconnect();
    },
  };
}

/**
 * The floor under any cross-node hop: the same payload through Redis alone, SPUBLISH from
 * one node-redis client and SSUBSCRIBE on another, both in this process; no WebSocket, no
 * server process.
 */
export async function redisPubSubPair(url) {
  const pub = createClient({ url });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  let onReceive = () => {};
  const channel = `bench-floor-${process.pid}`;
  await sub.sSubscribe(channel, (text) => {
    const i = text.lastIndexOf('"seq":');
    const j = text.indexOf(',', i);
    onReceive(Number(text.slice(i + 6, j)), Number(text.slice(j + 5, text.length - 1)));
  });
  const prefix = `{${CANDIDATE},"seq":`;
  return {
    send: (seq, t) => void pub.sPublish(channel, `${prefix}${seq},"t":${t}}`),
    onReceive: (fn) => (onReceive = fn),
    unexpected: [],
    close: () => Promise.all([pub.quit(), sub.quit()]),
  };
}

/**
 * Drives `pair` for `warmupMs`, then measures in slices (bench/lib/slices.mjs) until it has `measureMs`
 * of slices in which other processes (other jobs on the machine) used at most
 * FOREIGN_LIMIT_CORES, or twice `measureMs` passed (then every slice counts: `disturbed`).
 *   mode 'window': A keeps `window` signals in flight (closed loop: saturation, bounded queue)
 *   mode 'paced':  A sends `rate` signals/s on a 1 ms timer
 * `probe()` gives { servers, redis } (CPU seconds), { wait } (seconds the server processes
 * waited for a CPU) and { calls } (per Redis command) at the edges of each slice. Returns totals over the slices used.
 */
export async function drive(pair, { mode, window = 64, rate = 5000, warmupMs, measureMs, probe }) {
  let seq = 0;
  let expect = 0;
  let seqErrors = 0;
  let running = true;
  let cur = null; // the slice being measured
  const send = () => pair.send(seq++, performance.now());
  pair.onReceive((s, t) => {
    if (s !== expect) seqErrors++;
    expect = s + 1;
    if (cur) {
      const ms = performance.now() - t;
      record(cur.hist, ms);
      if (ms > cur.maxMs) cur.maxMs = ms;
      cur.messages++;
    }
    if (mode === 'window' && running) send();
  });
  let timer;
  const began = performance.now();
  if (mode === 'window') {
    for (let i = 0; i < window; i++) send();
  } else {
    timer = setInterval(() => {
      const due = Math.floor(((performance.now() - began) * rate) / 1000);
      while (seq < due) send();
    }, 1);
  }
  await sleep(warmupMs);
  const snap = async () => ({ probe: await probe(), gen: process.cpuUsage(), machine: cpuSnapshot(), at: performance.now() });
  const m = await measureSlices({
    snap,
    cleanMs: measureMs,
    maxMs: 2 * measureMs,
    started: began + warmupMs,
    // Each slice's latencies go into a histogram of its own, opened before its sleep.
    during: () => (cur = { hist: newHist(), maxMs: 0, messages: 0 }),
    diff(prev, next, slice) {
      cur = null;
      slice.seconds = (next.at - prev.at) / 1000;
      slice.servers = next.probe.servers - prev.probe.servers;
      slice.redis = next.probe.redis - prev.probe.redis;
      slice.wait = next.probe.wait - prev.probe.wait;
      slice.calls = Object.fromEntries(Object.entries(next.probe.calls).map(([c, n]) => [c, n - (prev.probe.calls[c] ?? 0)]));
      slice.gen = (next.gen.user + next.gen.system - prev.gen.user - prev.gen.system) / 1e6;
      slice.others = cpuBetween(prev.machine, next.machine).others;
      return slice;
    },
  });
  running = false;
  clearInterval(timer);
  // Let what is in flight arrive, so the next phase's order check starts clean.
  for (let i = 0; i < 100 && expect < seq; i++) await sleep(20);
  const { used, disturbed, seconds } = m;
  const sum = (f) => sumOf(used, f);
  const hist = newHist();
  for (const x of used) merge(hist, x.hist);
  const calls = {};
  for (const x of used) for (const [c, n] of Object.entries(x.calls)) calls[c] = (calls[c] ?? 0) + n;
  return {
    messages: sum((x) => x.messages),
    seconds,
    rate: sum((x) => x.messages) / seconds,
    hist,
    maxMs: Math.max(...used.map((x) => x.maxMs)),
    servers: sum((x) => x.servers),
    redis: sum((x) => x.redis),
    wait: sum((x) => x.wait),
    calls,
    genCores: sum((x) => x.gen) / seconds,
    others: sum((x) => x.others * x.seconds) / seconds,
    disturbed,
    leftOutS: m.leftOutS,
    seqErrors,
    lost: seq - expect,
  };
}
