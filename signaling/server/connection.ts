import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { Grant } from './auth.js';
import type { Session } from './session.js';
import { StrikeCounter, TokenBucket } from './token-bucket.js';

/** One WebSocket connection and what the server tracks about it. */
export class Connection {
  readonly openedAt: number;
  bytesIn = 0;
  bytesOut = 0;
  /** Set by the heartbeat on ping, cleared by a pong. */
  alive = true;
  /** The heartbeat terminated this connection. */
  timedOut = false;
  closed = false;
  /** A close code ws sent on its own (1009) when it will not read the client's reply. */
  closeCodeSent: number | null = null;
  /** The joined session, if any. */
  session: Session | null = null;
  /** Tail of this connection's message chain while an async store is involved. */
  pending: Promise<void> | null = null;
  readonly bucket: TokenBucket;
  readonly strikes: StrikeCounter;
  /** The socket is corked until the end of the current tick (see `coalesce`). */
  private corked = false;

  constructor(
    readonly ws: WebSocket,
    readonly request: IncomingMessage,
    readonly ip: string,
    readonly grant: Grant,
    now: number,
    limits: { messagesPerSecond: number; messageBurst: number; abuseThreshold: number },
  ) {
    this.openedAt = now;
    this.bucket = new TokenBucket(limits.messagesPerSecond, limits.messageBurst, now);
    this.strikes = new StrikeCounter(limits.abuseThreshold, now);
  }

  send(frame: string): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.bytesOut += Buffer.byteLength(frame);
    this.coalesce();
    this.ws.send(frame);
  }

  /**
   * Frames sent to this connection within one tick (say a burst of trickled candidates
   * relayed from one socket read) leave in one socket write instead of one write syscall
   * each: the socket is corked at the first frame and uncorked on the next tick. Order
   * and bytes are unchanged; nothing waits longer than the rest of the current tick. The
   * write syscall per frame was half of the relay's CPU time (BENCHMARKS.md, issue 2).
   * ws does not expose its socket: without `_socket` frames go out one by one as before.
   */
  private coalesce(): void {
    if (this.corked) return;
    const socket = (this.ws as unknown as { _socket?: Duplex | null })._socket;
    if (!socket || typeof socket.cork !== 'function') return;
    this.corked = true;
    socket.cork();
    process.nextTick(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
  }
}
