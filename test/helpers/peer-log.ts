/**
 * What one SignalingClient saw, for the cluster failover tests: welcomes (with the time),
 * peer-joined/peer-left, signals in arrival order, close codes of lost connections.
 */
import { WebSocket } from 'ws';
import { ExponentialBackoff, SignalingClient, type SignalingClientOptions, type WebSocketConstructor, type Welcome } from '../../signaling/client/index.js';
import { defer } from './resources.js';

export interface PeerLog {
  welcomes: (Welcome & { at: number })[];
  joined: string[];
  left: { id: string; reason: string; at: number }[];
  signals: { from: string; data: unknown }[];
  /** Codes of the server's `error` frames (e.g. `rate-limited`, `peer-not-found`). */
  errors: string[];
  /** Close codes of the connections lost (each followed by a reconnect attempt). */
  lost: number[];
  /** Everyone this client believes is in the room (welcome.peers, then joined/left). */
  peers: Set<string>;
  /** Signals from `from` whose data is `{ n }`, in arrival order. */
  seqFrom(from: string): number[];
}

export function peerLog(client: SignalingClient): PeerLog {
  const log: PeerLog = {
    welcomes: [],
    joined: [],
    left: [],
    signals: [],
    errors: [],
    lost: [],
    peers: new Set(),
    seqFrom: (from) => log.signals.filter((s) => s.from === from).map((s) => (s.data as { n: number }).n),
  };
  client.on('open', (w) => {
    log.welcomes.push({ ...w, at: Date.now() });
    log.peers = new Set(w.peers.map((p) => p.id));
  });
  client.on('peer-joined', (p) => {
    log.joined.push(p.id);
    log.peers.add(p.id);
  });
  client.on('peer-left', (id, reason) => {
    log.left.push({ id, reason, at: Date.now() });
    log.peers.delete(id);
  });
  client.on('signal', (from, data) => log.signals.push({ from, data }));
  client.on('error', (err) => log.errors.push(err.code));
  client.on('reconnecting', (info) => {
    if (info.attempt === 0) log.lost.push(info.closeCode);
  });
  return log;
}

/** 0, 1, ..., n - 1 */
export const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

/** Like `joinAt`, with a PeerLog attached before the first welcome. */
export async function joinLogged(url: string, room: string, opts: Partial<SignalingClientOptions> = {}): Promise<{ client: SignalingClient; id: string; log: PeerLog }> {
  const client = new SignalingClient({ url, room, WebSocket: WebSocket as unknown as WebSocketConstructor, reconnect: new ExponentialBackoff({ baseMs: 100, capMs: 500 }), ...opts });
  defer(() => client.close());
  const log = peerLog(client);
  const welcome = await client.connect();
  return { client, id: welcome.id, log };
}
