import { decodeBase64, encodeBase64 } from '../protocol/base64.js';
import { decodeServerFrame as decodeServerMessage, encodeClientFrame as encodeClientMessage } from '../protocol/client-codec.js';
import { CLOSE_CODES, FINAL_CLOSE_CODES, type LeaveReason } from '../protocol/codes.js';
import type { ClientMessage, IceServer, PeerInfo, WelcomeMessage } from '../protocol/schemas.js';
import { utf8Length } from '../protocol/utf8.js';
import { ExponentialBackoff, type ReconnectPolicy } from './backoff.js';
import { type ClientClock, systemClock } from './clock.js';
import { TypedEmitter } from './emitter.js';
import { SignalingError } from './errors.js';
import type { FetchLike } from './http-socket.js';
import { detach, MOVING, PING, PING_REF, TransportLadder } from './transport-ladder.js';

/** The part of the W3C WebSocket the client uses; browsers' and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol?: string;
  /** Bytes queued by `send` and not yet written to the network (both implementations have it). */
  readonly bufferedAmount?: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** How the client reaches the server (PROTOCOL.md, "HTTP transports"). */
export type Transport = 'websocket' | 'sse' | 'poll';

export interface SignalingClientOptions {
  /** The service's WebSocket URL, e.g. `wss://example.com/ws`. */
  url: string;
  room: string;
  meta?: Record<string, unknown>;
  /** Auth token, sent as the `token` query parameter. */
  token?: string;
  /** WebSocket implementation; default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** When to reconnect; default exponential backoff with full jitter. `false`: never. */
  reconnect?: ReconnectPolicy | false;
  /**
   * An attempt without `welcome` this long after it started (socket, upgrade and join
   * included) is given up and retried like a lost connection. Default 10 000.
   */
  welcomeTimeoutMs?: number;
  /**
   * Liveness (PROTOCOL.md, Liveness): after this long without any frame from the server,
   * the client sends `ping`. Default 15 000. A busy connection never pings.
   */
  pingAfterMs?: number;
  /**
   * A `ping` followed by this long without any frame means the connection is dead (e.g.
   * half-open: the server's host vanished): it is closed and the client reconnects and
   * resumes. Default 5 000; a dead connection is noticed within pingAfterMs + pingTimeoutMs.
   */
  pingTimeoutMs?: number;
  /**
   * The transports to try, best first: a WebSocket, then Server-Sent Events, then
   * long-polling (for networks whose proxies break WebSocket). Default all three.
   */
  transports?: Transport[];
  /** `fetch` for the HTTP transports; default `globalThis.fetch`. */
  fetch?: FetchLike;
  /**
   * A transport that has not shown it works this long after it was started moves the
   * client on to the next one: a WebSocket with no frame (a middlebox that answered the
   * upgrade and forwards nothing), SSE with no first event (a buffering proxy holds it).
   * Default 2 500, so that even the third transport is working within 3 s.
   */
  probeMs?: number;
  /**
   * Below the first transport, the client tries it again in the background this often
   * (jittered) and moves up when it works. Default 60 000.
   */
  upgradeRetryMs?: number;
  /** Time and timers; default the platform's. Injectable so tests drive every timeout without waiting. */
  clock?: ClientClock;
}

export type SignalingState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface Welcome {
  id: string;
  room: string;
  peers: PeerInfo[];
  iceServers: IceServer[];
  /** True when the server gave back the same id after a reconnect. */
  resumed: boolean;
  /** The limits in force (`welcome.limits`), relay limits included; see PROTOCOL.md. */
  limits: Record<string, number>;
}

/** What `relay()` sends to a peer. Every field is passed through by the server unchanged. */
export interface RelayFrame {
  /** A string, or bytes (sent as base64 and handed to the recipient as a Uint8Array). */
  data?: string | Uint8Array;
  /** Integers 0..4294967295, opaque to the server (the peer library's sequencing and acks). */
  seq?: number;
  ack?: number;
  /** A fragment that the next frame continues. */
  more?: boolean;
  /** The server may drop it, or keep only the newest per channel, without telling anyone. */
  unreliable?: boolean;
}

/** A `relay` frame received from a peer of the room (`from` is stamped by the server). */
export interface ReceivedRelayFrame extends RelayFrame {
  from: string;
  channel: string;
}

export type SignalingClientEvents = {
  /** A `welcome` arrived: first join, or after a reconnect (check `resumed`). */
  open: (welcome: Welcome) => void;
  'peer-joined': (peer: PeerInfo) => void;
  'peer-left': (id: string, reason: LeaveReason) => void;
  signal: (from: string, data: unknown) => void;
  /** A peer relayed a frame to us through the server (binary data already decoded). */
  relay: (frame: ReceivedRelayFrame) => void;
  /**
   * A server `error` frame, a frame the client could not decode (e.g. invalid base64), or
   * `timeout`: no `welcome` or no answer to a `ping` in time (a reconnect follows).
   */
  error: (error: SignalingError) => void;
  /** The connection was lost; another attempt follows after `delayMs`. */
  reconnecting: (info: { attempt: number; delayMs: number; closeCode: number }) => void;
  state: (state: SignalingState) => void;
  /** Final close: by `close()`, by a final close code, or when the policy gave up. */
  close: (info: { code: number; reason: string }) => void;
  /** The transport in use changed (`reason`: why the client moved down, or up). */
  transport: (info: { transport: Transport; reason: string }) => void;
};

const OPEN = 1;
const CLOSED = 3;

/**
 * Client of the rallypoint signaling service (browser and Node). Joins one room,
 * reconnects with backoff and resumes its session (same id) within the grace period.
 */
export class SignalingClient extends TypedEmitter<SignalingClientEvents> {
  #ws: WebSocketLike | null = null;
  #stateValue: SignalingState = 'idle';
  #welcome: WelcomeMessage | null = null;
  #resumeToken: string | undefined;
  #attempt = 0;
  #outageStart = 0;
  /** One timer: the reconnect delay while disconnected, else the welcome or liveness check. */
  #timer: unknown;
  /** [welcomeTimeoutMs, pingAfterMs, pingTimeoutMs] */
  readonly #times: number[];
  /** When the last frame from the server arrived. */
  #heard = 0;
  /** When the last ping went out; later than #heard while it is unanswered. */
  #pinged = 0;
  #closing: Promise<void> | null = null;
  readonly #policy: ReconnectPolicy | null;
  readonly #clock: ClientClock;
  /** Which transport to open, when to move down or back up (transport-ladder.ts). */
  readonly #ladder: TransportLadder;
  #connectWaiters: { resolve: (w: Welcome) => void; reject: (e: Error) => void }[] = [];
  /** The server refused our `join` (an error frame before `welcome`): the close that follows is final. */
  #joinRefused: SignalingError | null = null;

  constructor(readonly options: SignalingClientOptions) {
    super();
    const clock = options.clock ?? systemClock;
    this.#clock = clock;
    this.#ladder = new TransportLadder(options, clock);
    this.#policy = options.reconnect === false ? null : (options.reconnect ?? new ExponentialBackoff());
    this.#times = [options.welcomeTimeoutMs ?? 10_000, options.pingAfterMs ?? 15_000, options.pingTimeoutMs ?? 5_000];
    // setTimeout fires at once for anything above 2^31 - 1 ms.
    if (!this.#times.every((ms) => ms > 0 && ms < 2 ** 31)) throw new RangeError('timeouts: 1 to 2^31-1 ms');
    // Validate the join now so a bad room name fails at construction, not on the wire.
    encodeClientMessage(this.#joinMessage());
  }

  get state(): SignalingState {
    return this.#stateValue;
  }

  /** Our id in the room, once welcomed. */
  get id(): string | null {
    return this.#welcome?.id ?? null;
  }

  /** `welcome.limits` of the current connection (empty before the first welcome). */
  get limits(): Record<string, number> {
    return this.#welcome?.limits ?? {};
  }

  /** The transport in use once it has shown it works (null before). */
  get transport(): Transport | null {
    return this.#ladder.transport;
  }

  /** Why the client last moved to another transport ('' if it never did). */
  get transportReason(): string {
    return this.#ladder.reason;
  }

  /** Bytes sent but not yet written to the network by the WebSocket (0 when not connected). */
  get bufferedAmount(): number {
    return this.#ws?.bufferedAmount ?? 0;
  }

  /** Connects and joins; resolves on the first `welcome`. */
  connect(): Promise<Welcome> {
    if (this.#stateValue === 'closed') return Promise.reject(new SignalingError('closed', 'client is closed'));
    const promise = new Promise<Welcome>((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    if (this.#stateValue === 'idle') {
      this.#outageStart = this.#clock.now();
      this.#open();
    } else if (this.#stateValue === 'open' && this.#welcome) {
      this.#settle(null, toWelcome(this.#welcome));
    }
    return promise;
  }

  /** Sends a signal to a peer of the room. Throws SignalingError on invalid data or when not open. */
  signal(to: string, data: unknown, ref?: string): void {
    // JSON.stringify drops these silently, which would put a signal without `data` on the wire.
    if (typeof data === 'function' || typeof data === 'symbol') {
      throw new SignalingError('invalid-message', `invalid signal message: data: ${typeof data} is not JSON`, ref);
    }
    this.#send(ref === undefined ? { type: 'signal', to, data } : { type: 'signal', to, data, ref });
  }

  /**
   * Relays a frame to peer `to` of the room over the signaling connection (PROTOCOL.md,
   * Relay). Returns false, sending nothing, when not joined (connecting, reconnecting or
   * closed). Throws SignalingError `invalid-message` on a bad channel name or seq/ack, and
   * `too-large` on a frame over `limits.maxMessageBytes`. Pace below `limits.relay*` and
   * watch `bufferedAmount`: the server drops what exceeds them (silently, for unreliable).
   */
  relay(to: string, channel: string, frame: RelayFrame): boolean {
    if (!this.#ws || this.#ws.readyState !== OPEN || !this.#welcome) return false;
    const { data } = frame;
    const bytes = data instanceof Uint8Array;
    // Undefined fields vanish in JSON; anything else invalid is refused by the guard in send().
    this.#send({
      type: 'relay',
      to,
      channel,
      data: bytes ? encodeBase64(data) : data,
      b64: bytes || undefined,
      seq: frame.seq,
      ack: frame.ack,
      more: frame.more || undefined,
      unreliable: frame.unreliable || undefined,
    });
    return true;
  }

  /** Leaves the room and closes for good (the room sees `peer-left` with reason `left`). */
  leave(): Promise<void> {
    if (this.#ws?.readyState === OPEN && this.#welcome) this.#send({ type: 'leave' });
    return this.close();
  }

  /**
   * Closes for good. Idempotent. Resolves once the socket has finished closing, so a
   * caller can wait until nothing of the client is left.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#clock.clearTimeout(this.#timer);
    this.#ladder.stop();
    const ws = this.#ws;
    this.#ws = null;
    this.#closing = new Promise<void>((resolve) => {
      if (!ws || ws.readyState === CLOSED) return resolve();
      detach(ws);
      ws.onclose = () => resolve();
      ws.close(CLOSE_CODES.normal, 'client closed');
    });
    if (this.#stateValue !== 'closed') this.#finish(CLOSE_CODES.normal, 'client closed');
    return this.#closing;
  }

  #send(message: ClientMessage): void {
    if (!this.#ws || this.#ws.readyState !== OPEN || !this.#welcome) throw new SignalingError('not-open', `cannot send ${message.type}: not joined`);
    let text: string;
    try {
      text = encodeClientMessage(message);
    } catch (err) {
      throw new SignalingError('invalid-message', (err as Error).message, message.ref, { cause: err });
    }
    const max = this.#welcome.limits.maxMessageBytes;
    if (max !== undefined && utf8Length(text) > max) throw new SignalingError('too-large', `message exceeds ${max} bytes`, message.ref);
    this.#ws.send(text);
  }

  #joinMessage(): ClientMessage {
    const msg: ClientMessage = { type: 'join', room: this.options.room };
    if (this.options.meta !== undefined) msg.meta = this.options.meta;
    if (this.#resumeToken !== undefined) msg.resume = this.#resumeToken;
    return msg;
  }

  #setState(state: SignalingState): void {
    if (this.#stateValue === state) return;
    this.#stateValue = state;
    this.emit('state', state);
  }

  #open(): void {
    this.#setState(this.#attempt === 0 ? 'connecting' : 'reconnecting');
    this.#joinRefused = null;
    this.#arm(this.#times[0] as number);
    let ws: WebSocketLike;
    try {
      ws = this.#ladder.open(() => ws.send(encodeClientMessage(this.#joinMessage())));
    } catch (err) {
      // A malformed URL is a programming error: no retry will fix it.
      this.#settle(new SignalingError('not-open', `cannot open ${this.options.url}: ${(err as Error).message}`, undefined, { cause: err }));
      this.#finish(CLOSE_CODES.normal, 'invalid url');
      return;
    }
    this.#ws = ws;
    ws.onmessage = (ev) => this.#onFrame(ev.data);
    ws.onerror = () => {
      // Followed by onclose, which decides what happens next.
    };
    ws.onclose = (ev) => this.#onClose(ws, ev.code, ev.reason);
  }

  #onFrame(data: unknown): void {
    this.#heard = this.#clock.now();
    this.#ladder.works = true;
    if (typeof data !== 'string') return this.emit('error', new SignalingError('bad-message', 'server sent a binary frame'));
    const decoded = decodeServerMessage(data);
    if (!decoded.ok) return this.emit('error', new SignalingError(decoded.code, `undecodable server frame: ${decoded.message}`));
    const msg = decoded.message;
    switch (msg.type) {
      case 'welcome': {
        this.#welcome = msg;
        this.#resumeToken = msg.resume.token;
        this.#attempt = 0;
        const ladder = this.#ladder;
        if (ladder.welcomed()) this.emit('transport', { transport: ladder.transport as Transport, reason: ladder.reason });
        this.#arm(this.#times[1] as number);
        this.#setState('open');
        this.emit('open', toWelcome(msg));
        this.#settle(null, toWelcome(msg));
        return;
      }
      case 'peer-joined':
        return this.emit('peer-joined', msg.peer);
      case 'peer-left':
        return this.emit('peer-left', msg.id, msg.reason);
      case 'signal':
        return this.emit('signal', msg.from, msg.data);
      case 'relay': {
        const { type: _, b64, ...fields } = msg;
        const frame: ReceivedRelayFrame = fields;
        if (b64 && fields.data !== undefined) {
          const bytes = decodeBase64(fields.data);
          // The server passes data through without decoding it: the sender may have lied.
          if (!bytes) return this.emit('error', new SignalingError('bad-message', `relay from ${msg.from}: data is not base64`));
          frame.data = bytes;
        }
        return this.emit('relay', frame);
      }
      case 'pong':
        return;
      case 'error': {
        if (msg.ref === PING_REF) return;
        const error = new SignalingError(msg.code, msg.message, msg.ref);
        // Before `welcome` the only message we sent is `join`: this error refuses it (room-full,
        // too-many-rooms, meta too-large, unauthorized, ...). Retrying the same join would not
        // help, and the server keeps the connection open for most of these: end it ourselves.
        // `unavailable` is not a refusal: the server closes with 1013 and we retry with backoff.
        if (!this.#welcome && !this.#joinRefused && msg.code !== 'unavailable') {
          this.#joinRefused = error;
          this.emit('error', error);
          this.#settle(error);
          this.#ws?.close(CLOSE_CODES.normal, `join refused: ${msg.code}`);
          return;
        }
        return this.emit('error', error);
      }
      default: {
        const never: never = msg;
        return void never;
      }
    }
  }

  #onClose(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    detach(ws);
    this.#ladder.stop();
    this.#ws = null;
    this.#welcome = null;
    if (this.#stateValue === 'closed') return;
    if (this.#joinRefused) return this.#finish(code, reason || `join refused: ${this.#joinRefused.code}`);
    // The ladder's next rung at once (moving up, or down past a transport that never worked),
    // or, when a round failed or the transport in use was lost, a reconnect after backoff.
    if (this.#ladder.closed(code, reason)) {
      ws.close(MOVING, 'moving');
      // Not open from now on (signal() would throw), though the next socket waits for `done`.
      this.#setState(this.#attempt ? 'reconnecting' : 'connecting');
      // The server has what we acknowledged before we resume elsewhere (HttpSocket.done).
      void Promise.resolve((ws as { done?: Promise<unknown> }).done).then(() => this.#stateValue !== 'closed' && this.#open());
      return;
    }
    // PROTOCOL.md: 1000 (normal close) is not reconnected either.
    if (FINAL_CLOSE_CODES.has(code) || code === CLOSE_CODES.normal || !this.#policy) {
      this.#settle(new SignalingError('closed', `connection closed (${code}${reason ? ` ${reason}` : ''})`));
      return this.#finish(code, reason);
    }
    const now = this.#clock.now();
    if (this.#attempt === 0) this.#outageStart = now;
    const delayMs = this.#policy.nextDelayMs({ attempt: this.#attempt, elapsedMs: now - this.#outageStart, closeCode: code });
    if (delayMs === null) {
      this.#settle(new SignalingError('gave-up', `gave up reconnecting after ${this.#attempt} attempts (last close ${code})`));
      return this.#finish(code, 'gave up reconnecting');
    }
    this.#setState('reconnecting');
    this.emit('reconnecting', { attempt: this.#attempt, delayMs, closeCode: code });
    this.#attempt++;
    this.#arm(delayMs, () => this.#open());
  }

  #arm(ms: number, then = () => this.#check()): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(then, ms);
  }

  /**
   * The welcome timeout, and liveness: ping only after `pingAfterMs` of silence and give up
   * only when a ping got no frame back for `pingTimeoutMs`, so a quiet room never reconnects
   * and a late timer (a throttled background tab) never counts as a missed answer.
   */
  #check(): void {
    const now = this.#clock.now();
    const [welcomeMs, afterMs, waitMs] = this.#times as [number, number, number];
    if (!this.#welcome) return this.#dead(`no welcome within ${welcomeMs} ms`);
    if (this.#pinged > this.#heard) {
      if (now - this.#pinged >= waitMs) return this.#dead(`no answer to ping within ${waitMs} ms`);
      return this.#arm(this.#pinged + waitMs - now);
    }
    if (now - this.#heard < afterMs) return this.#arm(this.#heard + afterMs - now);
    this.#pinged = now;
    this.#ws?.send(PING);
    this.#arm(waitMs);
  }

  /** Gives the connection up as dead: reconnect (and resume) as after a lost connection. */
  #dead(reason: string): void {
    const ws = this.#ws as WebSocketLike;
    this.emit('error', new SignalingError('timeout', reason));
    this.#onClose(ws, CLOSE_CODES.timeout, reason);
    // Detached by now; a half-open socket may never finish its closing handshake.
    ws.close(CLOSE_CODES.timeout, reason);
  }

  #settle(error: Error | null, welcome?: Welcome): void {
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) {
      if (error) w.reject(error);
      else if (welcome) w.resolve(welcome);
    }
  }

  #finish(code: number, reason: string): void {
    this.#clock.clearTimeout(this.#timer);
    this.#settle(new SignalingError('closed', 'client closed before joining'));
    this.#setState('closed');
    this.emit('close', { code, reason });
  }
}

function toWelcome(msg: WelcomeMessage): Welcome {
  return { id: msg.id, room: msg.room, peers: msg.peers, iceServers: msg.iceServers, resumed: msg.resumed, limits: msg.limits };
}
