/**
 * Cluster test parts: `rallypoint serve` nodes (the built CLI, real processes) and a TCP
 * balancer in front of them whose choice of node the test controls.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket, connect as tcpConnect } from 'node:net';
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { ExponentialBackoff, SignalingClient, type SignalingClientOptions, type WebSocketConstructor } from '../../signaling/client/index.js';
import { nextLine, START_LINE, startCli } from './cli.js';
import { httpGet } from './http.js';
import { defer } from './resources.js';

/** A `rallypoint serve` node: its port, its pino log lines (stderr, JSON) and its process. */
export interface Node {
  port: number;
  wsUrl: string;
  child: ChildProcessWithoutNullStreams;
  logs: Record<string, unknown>[];
  /** Resolves with the first log entry (past or future) that `match` accepts. */
  waitLog(match: (entry: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<number | string | null>;
}

export async function startNode(extra: string[] = []): Promise<Node> {
  const child = startCli(['serve', '--port', '0', '--host', '127.0.0.1', '--turn', 'off', '--trust-proxy', '1', ...extra]);
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string | null);
  const logs: Record<string, unknown>[] = [];
  const waiters: { match: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      entry = { msg: line };
    }
    logs.push(entry);
    for (const w of waiters.splice(0)) {
      if (w.match(entry)) w.resolve(entry);
      else waiters.push(w);
    }
  });
  const line = await nextLine(child);
  const m = START_LINE.exec(line);
  if (!m) throw new Error(`unexpected start line: ${line}`);
  const port = Number(new URL(m[1]!).port);
  return {
    port,
    wsUrl: m[2]!,
    child,
    logs,
    exited,
    waitLog: (match) => {
      const seen = logs.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
  };
}

/** A node of the cluster on `redisUrl`, with id `nodeId` (logs at debug so tests can wait on them). */
export function startClusterNode(redisUrl: string, nodeId: string, extra: string[] = []): Promise<Node> {
  return startNode(['--redis', redisUrl, '--node-id', nodeId, ...extra]);
}

export async function health(node: Node): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await httpGet(`http://127.0.0.1:${node.port}/healthz`);
  return { status: res.status, body: JSON.parse(res.body) as Record<string, unknown> };
}

/** Polls (every 50 ms, at most `timeoutMs`) until `check` is true; throws with `what` otherwise. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Balancer {
  port: number;
  wsUrl: string;
  /** Index of the node the next connections go to; `null`: round-robin. Dead nodes are skipped. */
  target: number | null;
  /** The node index each accepted connection went to, in order. */
  readonly placed: number[];
  close(): Promise<void>;
}

/**
 * A TCP load balancer on 127.0.0.1 over `ports`: each connection goes to `target` (or the
 * next node in turn), and to the next one when a node refuses the connection, as nginx's
 * `proxy_next_upstream error` does. The nginx tests use the documented config; this one
 * lets a test say which node a client lands on.
 */
export async function startBalancer(ports: number[]): Promise<Balancer> {
  let turn = 0;
  const sockets = new Set<Socket>();
  const b: Balancer = { port: 0, wsUrl: '', target: null, placed: [], close: async () => undefined };
  const server = createServer((down) => {
    sockets.add(down);
    down.on('close', () => sockets.delete(down));
    down.on('error', () => undefined);
    down.pause();
    const first = b.target ?? turn++ % ports.length;
    const attempt = (i: number, tries: number): void => {
      const up = tcpConnect(ports[i % ports.length]!, '127.0.0.1');
      up.once('error', () => {
        if (tries + 1 < ports.length) attempt(i + 1, tries + 1);
        else down.destroy();
      });
      up.once('connect', () => {
        b.placed.push(i % ports.length);
        sockets.add(up);
        up.on('close', () => sockets.delete(up));
        up.on('error', () => down.destroy());
        down.pipe(up).pipe(down);
        down.resume();
        down.on('close', () => up.destroy());
        up.on('close', () => down.destroy());
      });
    };
    attempt(first, 0);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  b.port = (server.address() as AddressInfo).port;
  b.wsUrl = `ws://127.0.0.1:${b.port}/ws`;
  b.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  defer(() => b.close());
  return b;
}

/** A SignalingClient (closed by cleanup()) that reconnects fast; resolves once joined. */
export async function joinAt(url: string, room: string, opts: Partial<SignalingClientOptions> = {}): Promise<{ client: SignalingClient; id: string; peers: string[] }> {
  const client = new SignalingClient({ url, room, WebSocket: WebSocket as unknown as WebSocketConstructor, reconnect: new ExponentialBackoff({ baseMs: 100, capMs: 500 }), ...opts });
  defer(() => client.close());
  const welcome = await client.connect();
  return { client, id: welcome.id, peers: welcome.peers.map((p) => p.id) };
}
