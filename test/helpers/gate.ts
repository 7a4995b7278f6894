/**
 * A TCP gate in front of a port: while `open` is false it refuses new connections (they
 * are reset at once, as a dead host would be), so a test decides WHEN a reconnecting
 * client gets through; connections already piped are left alone.
 */
import { once } from 'node:events';
import { createServer, connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { defer } from './resources.js';

export interface Gate {
  port: number;
  wsUrl: string;
  open: boolean;
  /** Connections refused while closed. */
  readonly refused: number;
  close(): Promise<void>;
}

export async function startGate(to: number): Promise<Gate> {
  const sockets = new Set<Socket>();
  let refused = 0;
  const g = {
    port: 0,
    wsUrl: '',
    open: true,
    get refused() {
      return refused;
    },
    close: async () => undefined,
  } as Gate;
  const server = createServer((down) => {
    down.on('error', () => undefined);
    if (!g.open) {
      refused++;
      down.resetAndDestroy();
      return;
    }
    sockets.add(down);
    down.on('close', () => sockets.delete(down));
    const up = tcpConnect(to, '127.0.0.1');
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.on('error', () => down.destroy());
    down.pipe(up).pipe(down);
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  g.port = (server.address() as AddressInfo).port;
  g.wsUrl = `ws://127.0.0.1:${g.port}/ws`;
  g.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  defer(() => g.close());
  return g;
}
