import { MemoryRoomStore, listenSignaling, type ListenOptions, type ListeningSignalingServer } from '../../signaling/server/index.js';
import { FakeClock } from './fake-clock.js';
import { httpGet } from './http.js';
import { LogCapture } from './logs.js';
import { defer, deferred } from './resources.js';
import { TestClient, type ConnectOptions } from './ws-client.js';

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
