/**
 * Shared helpers for tests that run a real signaling server and real clients: servers on
 * port 0 that are closed after each test, a recording `ws` WebSocket for clients, and
 * access to the server side of each connection (through the HTTP `upgrade` event).
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import type { SignalingClient, WebSocketConstructor } from '../../signaling/client/index.js';
import { listenSignaling, type ListenOptions, type ListeningSignalingServer } from '../../signaling/server/index.js';

export type Harness = {
  servers: ListeningSignalingServer[];
  clients: SignalingClient[];
  sockets: WebSocket[];
};

export function newHarness(): Harness {
  return { servers: [], clients: [], sockets: [] };
}

/** Closes every client, raw socket and server of the harness (in that order). */
export async function cleanup(h: Harness): Promise<void> {
  for (const c of h.clients.splice(0)) {
    c.removeAllListeners();
    c.close();
  }
  for (const ws of h.sockets.splice(0)) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  await Promise.all(h.servers.splice(0).map((s) => s.close({ timeoutMs: 1_000 })));
}

export async function startServer(h: Harness, opts: ListenOptions = {}): Promise<ListeningSignalingServer> {
  const s = await listenSignaling({ port: 0, host: '127.0.0.1', logger: false, ...opts });
  h.servers.push(s);
  return s;
}

/** The server-side TCP socket of every upgrade, in arrival order (destroy one to drop a client abruptly). */
export function upgradeSockets(s: ListeningSignalingServer): Socket[] {
  const sockets: Socket[] = [];
  s.http.on('upgrade', (_req, socket: Socket) => sockets.push(socket));
  return sockets;
}

/** A `ws` WebSocket class that records its instances and every frame they send. */
export function recordingWebSocket(): { WS: WebSocketConstructor; instances: WebSocket[]; sent: string[] } {
  const instances: WebSocket[] = [];
  const sent: string[] = [];
  class RecordingWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      instances.push(this);
      const send = this.send.bind(this) as (data: unknown) => void;
      (this as { send: (data: unknown) => void }).send = (data: unknown) => {
        sent.push(String(data));
        send(data);
      };
    }
  }
  return { WS: RecordingWebSocket as unknown as WebSocketConstructor, instances, sent };
}

/**
 * Resolves when every WebSocket in `list` is fully closed (TCP included). Not `events.once`:
 * that rejects on the `error` ws emits when a handshake is aborted.
 */
export async function allClosed(list: WebSocket[]): Promise<void> {
  await Promise.all(list.map((ws) => (ws.readyState === WebSocket.CLOSED ? undefined : new Promise<void>((resolve) => ws.once('close', () => resolve())))));
}

/** Opens a raw rallypoint.v1 WebSocket (for tests that must send what the client refuses to). */
export async function rawSocket(h: Harness, url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, ['rallypoint.v1']);
  h.sockets.push(ws);
  await once(ws, 'open');
  return ws;
}

/** Counts of active, event-loop-holding resources by type (`Timeout`, `TCPSocketWrap`, ...). */
export function activeResources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}
