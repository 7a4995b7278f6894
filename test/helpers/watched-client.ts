/**
 * A Node SignalingClient (the `ws` WebSocket, the global fetch) that records, from before
 * it connects, what a transport test checks: its transport changes, reconnects and errors,
 * and every signal and relay frame it receives, in order.
 */
import { WebSocket } from 'ws';
import type { Transport } from '../../signaling/client/client.js';
import { ExponentialBackoff, SignalingClient, type SignalingClientOptions, type WebSocketConstructor } from '../../signaling/client/index.js';
import { until } from './cluster.js';
import { defer } from './resources.js';

export interface Watched {
  client: SignalingClient;
  /** Id of the first welcome. */
  id: string;
  /** From `connect()` to the first welcome, in ms. */
  connectMs: number;
  /** `transport` events, in order. */
  transports: { transport: Transport; reason: string }[];
  /** `reconnecting` events (close codes). */
  reconnects: number[];
  /** `open` events: `resumed` of each welcome, first included. */
  welcomes: { id: string; resumed: boolean }[];
  errors: string[];
  /** `peer-left` events: `<id> <reason>`. */
  left: string[];
  /** What peers sent, in order: `signal <from> <data>` and `relay <from> <channel> <data>`. */
  inbox: string[];
}

/** Connects and joins `room` (closed by cleanup()); resolves once welcomed. */
export async function joinWatched(url: string, room: string, opts: Partial<SignalingClientOptions> = {}): Promise<Watched> {
  const client = new SignalingClient({ url, room, WebSocket: WebSocket as unknown as WebSocketConstructor, reconnect: new ExponentialBackoff({ baseMs: 100, capMs: 500 }), ...opts });
  defer(() => client.close());
  const w: Omit<Watched, 'id' | 'connectMs'> = { client, transports: [], reconnects: [], welcomes: [], errors: [], left: [], inbox: [] };
  client.on('transport', (t) => w.transports.push(t));
  client.on('reconnecting', (r) => w.reconnects.push(r.closeCode));
  client.on('open', (welcome) => w.welcomes.push({ id: welcome.id, resumed: welcome.resumed }));
  client.on('error', (e) => w.errors.push(`${e.code}: ${e.message}`));
  client.on('peer-left', (id, reason) => w.left.push(`${id} ${reason}`));
  client.on('signal', (from, data) => w.inbox.push(`signal ${from} ${JSON.stringify(data)}`));
  client.on('relay', (f) => w.inbox.push(`relay ${f.from} ${f.channel} ${String(f.data)}`));
  const started = performance.now();
  const welcome = await client.connect();
  return { ...w, id: welcome.id, connectMs: performance.now() - started };
}

/** Resolves once `w` has received `n` frames from peers (throws with what came after `timeoutMs`). */
export async function received(w: Watched, n: number, timeoutMs = 10_000): Promise<void> {
  await until(() => w.inbox.length >= n, `${n} frames at ${w.id}`, timeoutMs).catch((err: Error) => {
    throw new Error(`${err.message}: got ${w.inbox.length}, the last: ${w.inbox.slice(-3).join(' | ')}`);
  });
}

/**
 * Sends `n` numbered signals each way between `a` and `b`, interleaved, and waits until all
 * arrived; returns what each inbox should then hold (only these, in this order).
 */
export async function exchangeSignals(a: Watched, b: Watched, n: number): Promise<{ toA: string[]; toB: string[] }> {
  const toA: string[] = [];
  const toB: string[] = [];
  for (let i = 0; i < n; i++) {
    a.client.signal(b.id, { i });
    toB.push(`signal ${a.id} ${JSON.stringify({ i })}`);
    b.client.signal(a.id, { i });
    toA.push(`signal ${b.id} ${JSON.stringify({ i })}`);
  }
  await Promise.all([received(a, a.inbox.length + n), received(b, b.inbox.length + n)]);
  return { toA, toB };
}
