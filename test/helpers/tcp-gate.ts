import { once } from 'node:events';
import { connect as tcpConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { defer } from './resources.js';

/**
 * A TCP front on 127.0.0.1 to `target`. While `closed`, every new connection is dropped at
 * once (a client behind it fails to reconnect and keeps retrying); `cut()` ends the open
 * flows. The test decides when a client loses its signaling connection and when it may
 * come back. Closed by cleanup().
 */
export interface TcpGate {
  readonly port: number;
  /** `ws://127.0.0.1:PORT/ws` */
  readonly wsUrl: string;
  closed: boolean;
  /** Destroys every open flow, both sides. */
  cut(): void;
}

export async function startTcpGate(target: number): Promise<TcpGate> {
  const flows = new Set<Socket>();
  const server = createServer((down) => {
    down.on('error', () => undefined);
    if (gate.closed) return void down.destroy();
    const up = tcpConnect(target, '127.0.0.1');
    for (const s of [down, up]) {
      flows.add(s);
      s.on('close', () => flows.delete(s));
    }
    up.on('error', () => down.destroy());
    up.on('close', () => down.destroy());
    down.on('close', () => up.destroy());
    down.pipe(up).pipe(down);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const gate: TcpGate = {
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    closed: false,
    cut: () => {
      for (const s of flows) s.destroy();
    },
  };
  defer(async () => {
    gate.cut();
    await new Promise((r) => server.close(r));
  });
  return gate;
}
