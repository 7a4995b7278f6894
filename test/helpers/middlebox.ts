import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket, connect as tcpConnect } from 'node:net';

/** What the middlebox does with a flow whose upstream answered `101 Switching Protocols`. */
export type MiddleboxMode = 'silent-after-upgrade' | 'pass';

export interface Middlebox {
  readonly port: number;
  /** `ws://127.0.0.1:PORT/ws`. */
  readonly wsUrl: string;
  /** Applies to flows opened from now on (open flows keep what they were given). */
  mode: MiddleboxMode;
  /** Upgrades (101 answers) seen, and how many of them were silenced. */
  readonly upgrades: number;
  readonly silenced: number;
  /** Destroys every flow and stops listening. Idempotent. */
  close(): Promise<void>;
}

const SWITCHING = Buffer.from('HTTP/1.1 101 ');
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * A TCP proxy on 127.0.0.1 to `target` that behaves like a TLS-inspecting middlebox that
 * does not understand WebSocket: plain HTTP passes both ways, but once the upstream
 * answered a request with 101 the middlebox forwards that answer's head and then nothing
 * more in either direction, with no FIN or RST (the client sees an open WebSocket that
 * never delivers a frame). Only the first response of a flow is looked at: a WebSocket
 * client opens a connection of its own for its handshake.
 */
export async function startMiddlebox(target: number, mode: MiddleboxMode = 'silent-after-upgrade'): Promise<Middlebox> {
  const sockets = new Set<Socket>();
  let upgrades = 0;
  let silenced = 0;
  const server = createServer((down) => {
    const flowMode = box.mode;
    const up = tcpConnect(target, '127.0.0.1');
    /** The flow's first upstream bytes, kept until they show whether it is a 101. */
    let head: Buffer | null = Buffer.alloc(0);
    let silent = false;
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => undefined);
      // A middlebox forgets a flow when one side is gone (it closes the other).
      s.on('close', () => {
        sockets.delete(s);
        (s === down ? up : down).destroy();
      });
    }
    down.on('data', (b: Buffer) => void (silent || up.write(b)));
    down.on('end', () => void (silent || up.end()));
    up.on('end', () => void (silent || down.end()));
    up.on('data', (b: Buffer) => {
      if (silent) return;
      if (head === null) return void down.write(b);
      head = Buffer.concat([head, b]);
      const n = Math.min(head.length, SWITCHING.length);
      if (!head.subarray(0, n).equals(SWITCHING.subarray(0, n))) {
        // Not an upgrade: pass this flow through from now on.
        down.write(head);
        head = null;
        return;
      }
      const end = head.indexOf(HEAD_END);
      if (end < 0) return; // the rest of the head is still to come
      upgrades++;
      if (flowMode === 'pass') {
        down.write(head);
        head = null;
        return;
      }
      silenced++;
      silent = true;
      down.write(head.subarray(0, end + HEAD_END.length));
      head = null;
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  const box: Middlebox = {
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    mode,
    get upgrades() {
      return upgrades;
    },
    get silenced() {
      return silenced;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
  return box;
}
