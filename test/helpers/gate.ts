/**
 * A TCP gate in front of a port: while `open` is false it refuses new connections (they
 * are reset at once, as a dead host would be), so a test decides WHEN a reconnecting
 * client gets through; connections already piped are left alone.
 */
import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket, connect as tcpConnect } from 'node:net';
import { defer } from './resources.js';

export interface Gate {
  port: number;
  wsUrl: string;
  open: boolean;
  /**
   * While true, bytes from clients to the server are held back (and sent once it is false
   * again): a client whose closing handshake never reaches the server, which then keeps
   * the connection in CLOSING until it terminates it. Connections the client closes while
   * held stay open towards the server until the server closes them.
   */
  hold: boolean;
  /** Connections refused while closed. */
  readonly refused: number;
  /** Destroys every connection through the gate, both sides: a drop the server sees at once. */
  cut(): void;
  close(): Promise<void>;
}

export async function startGate(to: number): Promise<Gate> {
  const sockets = new Set<Socket>();
  let refused = 0;
  const g = {
    port: 0,
    wsUrl: '',
    open: true,
    hold: false,
    get refused() {
      return refused;
    },
    cut: () => {
      for (const s of sockets) s.destroy();
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
    up.pipe(down);
    const held: Buffer[] = [];
    down.on('data', (chunk: Buffer) => {
      if (g.hold) held.push(chunk);
      else {
        for (const c of held.splice(0)) up.write(c);
        up.write(chunk);
      }
    });
    // A client's close while held does not reach the server either: the server's side
    // stays open until the server itself closes it.
    down.on('close', () => {
      if (!g.hold) up.destroy();
    });
    up.on('close', () => down.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  g.port = (server.address() as AddressInfo).port;
  g.wsUrl = `ws://127.0.0.1:${g.port}/ws`;
  g.close = async () => {
    g.cut();
    await new Promise<void>((r) => server.close(() => r()));
  };
  defer(() => g.close());
  return g;
}
