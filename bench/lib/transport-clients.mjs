/**
 * The clients of bench/transports.mjs, all in the load generator's process (one clock for
 * send and receive times): rallypoint's SignalingClient (dist/) on one transport or on its
 * default ladder, and socket.io-client on one engine.io transport or on its defaults
 * (polling, then upgrade). Pairs fit drive() of bench/lib/cluster-load.mjs; connect probes
 * time how long a client takes to be usable behind a proxy.
 */
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { SignalingClient } from '../../dist/signaling/client/index.js';
import { CANDIDATE_OBJECT } from './cluster-load.mjs';

const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: none within ${ms} ms`)), ms).unref())]);

/** A joined SignalingClient on `transports` (undefined: the default ladder). */
export async function rallypointClient(url, room, transports) {
  const c = new SignalingClient({ url, room, transports, WebSocket, reconnect: false });
  c.on('error', () => {});
  await withTimeout(c.connect(), 15_000, 'welcome');
  return c;
}

/** A connected socket.io client on `transports` (undefined: its defaults). */
export function socketIoClient(url, transports) {
  const s = io(url, { ...(transports && { transports }), forceNew: true, reconnection: false });
  return withTimeout(
    new Promise((resolve, reject) => {
      s.once('connect', () => resolve(s));
      s.once('connect_error', reject);
    }),
    15_000,
    'connect',
  ).catch((err) => {
    s.disconnect();
    return Promise.reject(err);
  });
}

/** A and B on rallypoint over `transport`, one room; fits drive(). */
export async function rallypointPair(url, transport, room) {
  const a = await rallypointClient(url, room, [transport]);
  const joined = new Promise((resolve) => a.once('peer-joined', resolve));
  const b = await rallypointClient(url, room, [transport]);
  await joined;
  let onReceive = () => {};
  const unexpected = [];
  b.on('signal', (from, data) => (from === a.id ? onReceive(data.seq, data.t) : unexpected.push(`signal from ${from}`)));
  for (const c of [a, b]) {
    c.on('error', (e) => unexpected.length < 5 && unexpected.push(`error: ${e.message}`));
    c.on('reconnecting', (i) => unexpected.length < 5 && unexpected.push(`connection lost: ${i.closeCode}`));
    c.on('close', (i) => unexpected.length < 5 && unexpected.push(`closed: ${i.code} ${i.reason}`));
  }
  const to = b.id;
  return {
    send: (seq, t) => a.signal(to, { ...CANDIDATE_OBJECT, seq, t }),
    onReceive: (fn) => (onReceive = fn),
    unexpected,
    close: async () => {
      for (const c of [a, b]) c.removeAllListeners?.('close');
      await Promise.all([a.close(), b.close()]);
    },
  };
}

/** The same pair on socket.io over `transport` ('polling' or 'websocket'): A emits `sig` naming B, B gets `msg`. */
export async function socketIoPair(url, transport) {
  const [a, b] = await Promise.all([socketIoClient(url, [transport]), socketIoClient(url, [transport])]);
  let onReceive = () => {};
  const unexpected = [];
  b.on('msg', (from, data) => (from === a.id ? onReceive(data.seq, data.t) : unexpected.push(`msg from ${from}`)));
  for (const s of [a, b]) s.on('disconnect', (reason) => reason !== 'io client disconnect' && unexpected.push(`disconnect: ${reason}`));
  const to = b.id;
  return {
    send: (seq, t) => a.emit('sig', to, { ...CANDIDATE_OBJECT, seq, t }),
    onReceive: (fn) => (onReceive = fn),
    unexpected,
    close: async () => {
      for (const s of [a, b]) s.disconnect();
    },
  };
}

/**
 * rallypoint's default ladder against `url`: ms from the call to the welcome, the transport
 * it ended on and why it moved; { ms: NaN, error } when no welcome came within 15 s.
 */
export async function rallypointConnect(url, room) {
  const t0 = performance.now();
  let c;
  try {
    c = new SignalingClient({ url, room, WebSocket, reconnect: false });
    c.on('error', () => {});
    await withTimeout(c.connect(), 15_000, 'welcome');
    return { ms: performance.now() - t0, transport: c.transport, reason: c.transportReason };
  } catch (err) {
    return { ms: NaN, transport: null, reason: err.message };
  } finally {
    await c?.close();
  }
}

/**
 * socket.io with its defaults against `url`: ms to 'connect' and the transport then; then up
 * to `upgradeWaitMs` for the upgrade's outcome: { upgradeMs } (from the call) or `upgrade`:
 * 'failed: <why>' / 'pending'.
 */
export async function socketIoConnect(url, upgradeWaitMs) {
  const t0 = performance.now();
  const s = io(url, { forceNew: true, reconnection: false });
  try {
    const engine = s.io;
    const upgraded = new Promise((resolve) => {
      engine.on('open', () => {
        engine.engine.once('upgrade', (t) => resolve({ upgrade: t.name, upgradeMs: performance.now() - t0 }));
        engine.engine.once('upgradeError', (e) => resolve({ upgrade: `failed: ${e.message}${e.description?.message ? ` (${e.description.message})` : ''}` }));
      });
    });
    await withTimeout(
      new Promise((resolve, reject) => {
        s.once('connect', resolve);
        s.once('connect_error', reject);
      }),
      15_000,
      'connect',
    );
    const ms = performance.now() - t0;
    const transport = engine.engine.transport.name;
    const up = await Promise.race([upgraded, new Promise((r) => setTimeout(() => r({ upgrade: 'pending' }), upgradeWaitMs))]);
    return { ms, transport, ...up };
  } catch (err) {
    return { ms: NaN, transport: null, upgrade: err.message };
  } finally {
    s.disconnect();
  }
}
