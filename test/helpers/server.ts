/**
 * The test harness of the signaling server: a real server on 127.0.0.1 and port 0 (on the
 * system clock or a FakeClock), the clients and raw sockets a test opens against it, and
 * access to the server side of its connections. Everything is closed by `cleanup()` from
 * resources.ts (every test file's afterEach), newest first: clients before their server.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import type { SignalingClient, WebSocketConstructor } from '../../signaling/client/index.js';
import { type ListeningSignalingServer, type ListenOptions, listenSignaling, MemoryRoomStore } from '../../signaling/server/index.js';
import { FakeClock } from './fake-clock.js';
import { httpGet } from './http.js';
import { LogCapture } from './logs.js';
import { defer, deferred } from './resources.js';
import { type ConnectOptions, TestClient } from './ws-client.js';

export interface TestServer extends ListeningSignalingServer {
  /** What the server logged (unless the test passed its own `logger`). */
  logs: LogCapture;
  /** A client connected to this server's WebSocket URL. */
  connect(opts?: ConnectOptions & { query?: string }): Promise<TestClient>;
  /** Connects and joins `room`; returns the client and its welcome. */
  joined(room: string, extra?: Record<string, unknown>): Promise<{ client: TestClient; id: string; token: string }>;
  /** Scrapes /metrics. */
  scrape(): Promise<string>;
}

/**
 * `listenSignaling()` on 127.0.0.1, a free port, logging into memory. Closed by `cleanup()`.
 */
export async function startServer(options: ListenOptions = {}): Promise<TestServer> {
  const logs = new LogCapture();
  const srv = await listenSignaling({ port: 0, host: '127.0.0.1', logger: logs.logger, ...options });
  defer(() => srv.close({ timeoutMs: 2_000 }));
  const connect = (opts: ConnectOptions & { query?: string } = {}): Promise<TestClient> => TestClient.connect(srv.wsUrl + (opts.query ?? ''), opts);
  return {
    ...srv,
    logs,
    connect,
    async joined(room, extra = {}) {
      const client = await connect();
      const welcome = await client.join(room, extra);
      return { client, id: welcome.id, token: welcome.resume.token };
    },
    async scrape() {
      const res = await httpGet(`${srv.url}/metrics`);
      if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
      return res.body;
    },
  };
}

/** A server driven by a FakeClock (time, buckets, heartbeat and grace timers move only by hand). */
export async function startFakeClockServer(options: ListenOptions = {}): Promise<TestServer & { clock: FakeClock }> {
  const clock = new FakeClock();
  const srv = await startServer({ ...options, clock });
  return { ...srv, clock };
}

/** Closes `client` (its listeners removed first) at cleanup. Returns it. */
export function tracked<C extends SignalingClient>(client: C): C {
  defer(() => {
    client.removeAllListeners();
    return client.close();
  });
  return client;
}

/** Terminates `ws` at cleanup unless it is closed by then. Returns it. */
export function trackedSocket(ws: WebSocket): WebSocket {
  defer(() => {
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  });
  return ws;
}

/** Opens a raw rallypoint.v1 WebSocket (for tests that must send what the client refuses to). */
export async function rawSocket(url: string): Promise<WebSocket> {
  const ws = trackedSocket(new WebSocket(url, ['rallypoint.v1']));
  await once(ws, 'open');
  return ws;
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

/** Counts of active, event-loop-holding resources by type (`Timeout`, `TCPSocketWrap`, ...). */
export function activeResources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

/**
 * The value of one sample in Prometheus text format, or undefined when absent.
 * `labels` must match the sample's labels exactly (order-insensitive).
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? '')
      .split(/,(?=[a-zA-Z_]+=")/)
      .filter(Boolean)
      .sort()
      .join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

/**
 * A room store whose `close()` waits until the test calls `release()`: keeps a server in its
 * `closing` state (after every client is gone, before the HTTP server closes).
 */
export class GatedStore extends MemoryRoomStore {
  /** Resolves when the server calls `close()`. */
  readonly closeStarted = deferred();
  private readonly gate = deferred();

  override async close(): Promise<void> {
    this.closeStarted.resolve();
    await this.gate.promise;
    super.close();
  }

  release(): void {
    this.gate.resolve();
  }
}
