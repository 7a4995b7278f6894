import { SUBPROTOCOL } from '../protocol/constants.js';
import type { SignalingClientOptions, Transport, WebSocketConstructor, WebSocketLike } from './client.js';
import type { ClientClock } from './clock.js';
import { SignalingError } from './errors.js';
import { HttpSocket } from './http-socket.js';

/** Close code of a client leaving a transport for another (CLOSE_CODES.moving): the session stays. */
export const MOVING = 4011;

/**
 * The `ref` of the client's pings. A server older than `ping` answers it with `bad-message`
 * echoing the ref: any frame proves the connection alive, and that error is not reported.
 */
export const PING_REF = 'rallypoint.ping';
export const PING = `{"type":"ping","ref":"${PING_REF}"}`;

/**
 * The transport ladder (PROTOCOL.md, "HTTP transports"): which transport the client opens
 * next, best first (a WebSocket, then Server-Sent Events, then long-polling), when it moves
 * down (a transport refused, stripped or silent: at once, no backoff) and how it moves back
 * up (a WebSocket tried now and then in the background). The client owns the connection's
 * life (welcome, liveness, backoff); it asks the ladder for a socket and tells it what
 * became of it.
 */
export class TransportLadder {
  /** The socket in use has shown it works (a frame, or the HTTP open event). */
  works = false;
  /** The transport in use once it has shown it works (null before). */
  transport: Transport | null = null;
  /** Why the client last moved to another transport ('' if it never did). */
  reason = '';
  readonly #options: SignalingClientOptions;
  readonly #clock: ClientClock;
  readonly #WS: WebSocketConstructor;
  readonly #rungs: Transport[];
  /** The socket last opened, and the one the client is joined on (null when it is not). */
  #ws: WebSocketLike | null = null;
  #joined: WebSocketLike | null = null;
  /** Index in #rungs of the transport tried now, and of the last one that worked (tried first). */
  #now = 0;
  #home = 0;
  /** Transports that failed in a row before showing they work (a full round: back off). */
  #failed = 0;
  /** The socket just lost had worked (see closed). */
  #lost = false;
  #probe: unknown;
  #up: unknown;

  constructor(options: SignalingClientOptions, clock: ClientClock) {
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.#rungs = options.transports ?? ['websocket', 'sse', 'poll'];
    if (!WS && this.#rungs.includes('websocket')) throw new SignalingError('not-open', 'no WebSocket implementation: pass options.WebSocket (e.g. from the ws package)');
    this.#WS = WS as WebSocketConstructor;
    this.#options = options;
    this.#clock = clock;
  }

  /** Opens a socket on the current rung (throws on a malformed URL); `opened` runs on its open event. */
  open(opened: () => void): WebSocketLike {
    const kind = this.#rungs[this.#now] as Transport;
    let ws: WebSocketLike;
    this.works = false;
    const url = this.#url();
    if (kind === 'websocket') ws = new this.#WS(url.toString(), [SUBPROTOCOL]);
    else {
      url.protocol = url.protocol.replace('ws', 'http');
      ws = new HttpSocket(url.toString(), kind, this.#options.fetch ?? fetch.bind(globalThis));
    }
    ws.onopen = () => {
      // An HTTP transport opens only once the server answered: that shows it works.
      if (kind !== 'websocket') this.works = true;
      opened();
    };
    this.#clock.clearTimeout(this.#probe);
    // A proxy that answers the upgrade and then forwards nothing, or one that buffers the
    // event stream, shows as silence: move on (a lone or last transport just waits). The
    // client hears of it as of a lost connection (1006), at once (a silent socket may
    // never close by itself).
    if (this.#now < this.#rungs.length - 1) this.#probe = this.#clock.setTimeout(() => this.works || ws.onclose?.({ code: 1006, reason: 'silent' }), this.#options.probeMs ?? 2500);
    this.#ws = ws;
    return ws;
  }

  /** A `welcome` arrived on the current rung: it is home now. True when the transport in use changed. */
  welcomed(): boolean {
    this.#joined = this.#ws;
    this.#failed = 0;
    this.#home = this.#now;
    const kind = this.#rungs[this.#now] as Transport;
    if (this.#now > 0) this.#retryUp();
    if (kind === this.transport) return false;
    this.transport = kind;
    return true;
  }

  /**
   * The socket in use closed (not by the client's own close()). True: the client opens the
   * next rung at once, no backoff: moving up to a transport that works again (see
   * #retryUp), or down past one that never worked (refused, stripped or silent). Except
   * when the transport just lost had worked: failing at once on its first reconnect is more
   * likely a node going away (a drain's 503) than a proxy, so it gets one backoff first.
   * False: a round of the ladder failed, or the transport in use was lost: the client
   * reconnects after its policy's delay, from the last rung that worked.
   */
  closed(code: number, reason: string): boolean {
    const again = this.#lost;
    this.#lost = this.works && code !== MOVING;
    if (code === MOVING || (!this.works && !again && ++this.#failed < this.#rungs.length)) {
      this.reason = code === MOVING ? `${this.#rungs[0]} works again` : `${this.#rungs[this.#now]} failed: ${reason || code}`;
      this.#now = code === MOVING ? 0 : (this.#now + 1) % this.#rungs.length;
      return true;
    }
    this.#failed = 0;
    this.#now = this.#home;
    return false;
  }

  /** The client left the socket in use (lost, or closed by the client): stops the probe and the background move up. */
  stop(): void {
    this.#joined = null;
    this.#clock.clearTimeout(this.#probe);
    this.#clock.clearTimeout(this.#up);
  }

  /** The server's URL with the token (a query parameter: browsers cannot set WebSocket headers). */
  #url(): URL {
    const url = new URL(this.#options.url);
    if (this.#options.token !== undefined) url.searchParams.set('token', this.#options.token);
    return url;
  }

  /**
   * Below the first transport: now and then (jittered), a WebSocket that must answer a
   * ping; when it does, the client leaves its HTTP session (keeping its peer session) and
   * resumes on a WebSocket.
   */
  #retryUp(): void {
    const ms = this.#options.upgradeRetryMs ?? 60_000;
    this.#up = this.#clock.setTimeout(
      () => {
        const probe = new this.#WS(this.#url().toString(), [SUBPROTOCOL]);
        const done = (ok: boolean): void => {
          this.#clock.clearTimeout(t);
          detach(probe);
          probe.close(1000);
          // Still joined on the HTTP session this probe was for (it may have been lost meanwhile).
          const ws = this.#now ? this.#joined : null;
          if (ws) ok ? ws.close(MOVING, 'moving') : this.#retryUp();
        };
        const t = this.#clock.setTimeout(() => done(false), this.#options.probeMs ?? 2500);
        probe.onopen = () => probe.send(PING);
        probe.onmessage = () => done(true);
        probe.onclose = () => done(false);
      },
      ms / 2 + Math.random() * ms,
    );
  }
}

/** Lets go of a socket: its events no longer reach the client. */
export function detach(ws: WebSocketLike): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = () => {};
}
