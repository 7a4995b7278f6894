import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, WebSocket } from 'ws';
import type { IceServer, Limits } from '../protocol/index.js';
import type { Grant } from './auth.js';
import { ConnectionRelay, RelayCounts, type RelayDelivery } from './relay-frames.js';
import type { Session } from './session.js';
import { StrikeCounter, TokenBucket } from './token-bucket.js';

type ConnectionLimits = Pick<
  Limits,
  | 'messagesPerSecond'
  | 'messageBurst'
  | 'abuseThreshold'
  | 'relayMessagesPerSecond'
  | 'relayMessageBurst'
  | 'relayBytesPerSecond'
  | 'relayBytesBurst'
  | 'relayLatestAboveBytes'
  | 'relayLatestSlots'
  | 'relayMaxBufferedBytes'
  | 'maxBufferedBytes'
>;

/**
 * Called instead of writing a frame that would take a connection's backlog past
 * `maxBufferedBytes`, with the frame's relay delivery (undefined for non-relay frames), so
 * the frame is queued for resume by the same rules as any other (unreliable ones are not).
 */
export type OverflowHandler = (conn: Connection, frame: string, relay?: RelayDelivery) => void;

/**
 * What a connection needs of its socket: a `ws` WebSocket, or an HttpSocket (the HTTP
 * transports), which behaves like one.
 */
export interface ServerSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  /** Bytes not written to the network yet, where that differs from bufferedAmount (HttpSocket). */
  readonly unsentAmount?: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  ping(): void;
  on(event: 'message', listener: (data: RawData, isBinary: boolean) => void): unknown;
  on(event: 'pong', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'close', listener: (code: number) => void): unknown;
  once(event: 'close', listener: () => void): unknown;
}

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
  /**
   * The ICE servers (with the TURN credential) minted for this connection at its first
   * join: rejoins on the same connection get the same ones until `iceServersStaleAt`
   * (server clock), so join/leave cannot mint credentials (and TURN allocation quota)
   * without bound, and a long-lived connection never hands out an expired one.
   */
  iceServers: IceServer[] | null = null;
  iceServersStaleAt = 0;
  /** Closes the connection while it is not in a room (the join deadline); null while joined. */
  joinTimer: unknown = null;
  /** Terminates a slow reader that has not finished closing (see `slowReaderCloseMs`). */
  castOffTimer: unknown = null;
  /** The key this connection counts under for maxConnectionsPerIp (see `sourceKey`). */
  source = '';
  readonly bucket: TokenBucket;
  readonly strikes: StrikeCounter;
  /** Its relay frames: their rate limit, and those held for it while it is congested (relay-frames.ts). */
  readonly relay: ConnectionRelay;
  /** The socket is corked until the end of the current tick (see `coalesce`). */
  private corked = false;

  constructor(
    readonly ws: ServerSocket,
    readonly request: IncomingMessage,
    readonly ip: string,
    readonly grant: Grant,
    now: number,
    private readonly limits: ConnectionLimits,
    relayCounts: RelayCounts = new RelayCounts(),
    private readonly onOverflow: OverflowHandler | null = null,
  ) {
    this.openedAt = now;
    this.bucket = new TokenBucket(limits.messagesPerSecond, limits.messageBurst, now);
    this.strikes = new StrikeCounter(limits.abuseThreshold, now);
    this.relay = new ConnectionRelay(this, limits, relayCounts, now);
  }

  /**
   * Writes a frame, unless it would take what waits to be written for this client past
   * `maxBufferedBytes`: then the frame is handed to the overflow handler (which closes the
   * connection) instead. Every frame the server sends goes through here, so a client that
   * stops reading costs at most that much (plus the closing frame), whatever is sent to it.
   */
  send(frame: string, relay?: RelayDelivery): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const bytes = Buffer.byteLength(frame);
    if (this.ws.bufferedAmount + bytes > this.limits.maxBufferedBytes && this.onOverflow !== null) return this.onOverflow(this, frame, relay);
    this.bytesOut += bytes;
    this.coalesce();
    this.ws.send(frame);
  }

  /** ws keeps its net.Socket private; null where it does not have one (tests' fakes). */
  socket(): Duplex | null {
    const socket = (this.ws as unknown as { _socket?: Duplex | null })._socket;
    return socket && typeof socket.cork === 'function' ? socket : null;
  }

  /**
   * Frames sent to this connection within one tick (say a burst of trickled candidates
   * relayed from one socket read) leave in one socket write instead of one write syscall
   * each: the socket is corked at the first frame and uncorked on the next tick. Order
   * and bytes are unchanged; nothing waits longer than the rest of the current tick. The
   * write syscall per frame was half of the relay's CPU time (BENCHMARKS.md, Signaling).
   * ws does not expose its socket: without `_socket` frames go out one by one as before.
   */
  private coalesce(): void {
    if (this.corked) return;
    const socket = this.socket();
    if (!socket) return;
    this.corked = true;
    socket.cork();
    process.nextTick(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  /**
   * Frames can still reach the client. False from the moment a close starts (ws is CLOSING
   * then), before `closed` is set by the close event: a handler that awaited must check this.
   */
  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
  }
}
