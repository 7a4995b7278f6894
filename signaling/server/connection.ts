import type { IncomingMessage } from 'node:http';
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
    this.ws.send(frame);
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
  }
}
