import { createServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { type AddressInfo, isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Logger, pino } from 'pino';
import { type RawData, WebSocketServer } from 'ws';
import {
  CLOSE_CODES,
  type ClientMessage,
  closeCodeFor,
  decodeClientMessage,
  type ErrorCode,
  encodeServerMessage,
  type IceServer,
  type LeaveReason,
  SUBPROTOCOL,
  type UpgradeRefusal,
} from '../protocol/index.js';
import { type Clock, systemClock } from './clock.js';
import { Connection, type ServerSocket } from './connection.js';
import { endSession, type HandlerContext, handleJoin, handleLeave, handlePing, handleSignal } from './handlers.js';
import { Heartbeat } from './heartbeat.js';
import { type HttpEndpointsContext, handleHttp, handleMetricsHttp } from './http-endpoints.js';
import { HttpSocket } from './http-socket.js';
import { HttpTransports } from './http-transport.js';
import { iceServersReuseMs } from './ice-refresh.js';
import { MemoryRoomStore } from './memory-rooms.js';
import { closeCodeLabel, SignalingMetrics } from './metrics.js';
import { type ResolvedOptions, resolveOptions, type SignalingServerOptions } from './options.js';
import { admitRelay, handleRelay, type RelayDelivery } from './relay-frames.js';
import type { RoomStore } from './rooms.js';
import type { Session } from './session.js';
import { clientAddress, sourceKey } from './source.js';
import { checkUpgrade, offeredSubprotocols, refuseUpgrade, type UpgradeCheck } from './upgrade.js';

/** draining: no new connections; sessions wait in their grace to resume on other nodes. */
type State = 'running' | 'draining' | 'closing' | 'closed';

type Admission = { ok: true; accept: (socket: ServerSocket) => void; refused: () => void } | { ok: false; reason: UpgradeRefusal };

/** RFC 6455 §7.4.1: reported when a Close frame carried no status code. */
const NO_STATUS = 1005;

/** How long `close()` waits for clients to finish the closing handshake before terminating them. */
const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;

/** Distinct refused Host names logged (see warnBadHost). */
const BAD_HOSTS_LOGGED = 32;

/**
 * The signaling service on one HTTP(S) server. Create it with `attachSignaling()` or
 * `listenSignaling()`; stop it with `close()` (idempotent).
 */
export class SignalingServer implements HandlerContext {
  readonly options: ResolvedOptions;
  readonly store: RoomStore;
  readonly metrics: SignalingMetrics;
  readonly sessions = new Map<string, Session>();
  readonly logger: Logger;
  private readonly clock: Clock;
  private readonly wss: WebSocketServer;
  private readonly connections = new Set<Connection>();
  private readonly perIp = new Map<string, number>();
  private pendingUpgrades = 0;
  /** Host names refused as `bad-host` and already logged (bounded, see warnBadHost). */
  private readonly badHostsLogged = new Set<string>();
  private readonly closedBytes = { in: 0, out: 0 };
  private readonly heartbeat: Heartbeat;
  private readonly httpContext: HttpEndpointsContext;
  private readonly transports: HttpTransports;
  private state: State = 'running';
  private closePromise: Promise<void> | null = null;
  private readonly onUpgradeBound = (req: IncomingMessage, socket: Duplex, head: Buffer): void => void this.onUpgrade(req, socket, head);

  constructor(
    readonly httpServer: HttpServer | HttpsServer,
    options: SignalingServerOptions = {},
    private readonly ownsHttpServer = false,
    /** Names the server was started for (listenSignaling's `host`): allowed Host names. */
    serverNames: string[] = [],
  ) {
    this.options = resolveOptions(options, serverNames);
    const { limits } = this.options;
    this.clock = this.options.clock ?? systemClock;
    this.logger = this.options.logger === false ? pino({ enabled: false }) : (this.options.logger ?? pino({ name: 'rallypoint' }));
    this.store = this.options.store ?? new MemoryRoomStore(limits);
    this.metrics = new SignalingMetrics({
      ...(this.options.registry ? { registry: this.options.registry } : {}),
      defaultMetrics: this.options.defaultMetrics ?? false,
      stats: () => ({ ...this.store.stats(), connections: this.connections.size }),
      bytes: () => {
        let bytesIn = this.closedBytes.in;
        let bytesOut = this.closedBytes.out;
        for (const c of this.connections) {
          bytesIn += c.bytesIn;
          bytesOut += c.bytesOut;
        }
        return { in: bytesIn, out: bytesOut };
      },
      httpSessions: () => this.transports.size,
      backlog: () => {
        let buffered = 0;
        let held = 0;
        for (const c of this.connections) {
          buffered += c.ws.bufferedAmount;
          held += c.relay.held;
        }
        return { buffered, held };
      },
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.maxFrameBytes,
      clientTracking: false,
      // Compression costs CPU and memory per connection for small JSON frames (and is a
      // known DoS surface); signaling frames are small.
      perMessageDeflate: false,
      handleProtocols: () => SUBPROTOCOL,
    });
    this.store.bind?.({
      limits,
      logger: this.logger,
      registry: this.metrics.registry,
      release: (room, id) => this.releaseSession(room, id),
      end: (room, id) => this.dropSession(room, id),
      answer: (request) => this.transports.answer(request),
    });
    this.httpContext = {
      registry: this.metrics.registry,
      closing: () => this.state !== 'running',
      degraded: () => this.store.healthy?.() === false,
      status: () => ({ connections: this.connections.size, ...this.store.stats() }),
      serveMetrics: this.options.serveMetrics ?? true,
      ...(this.options.metricsToken !== undefined ? { metricsToken: this.options.metricsToken } : {}),
    };
    const store = this.store;
    this.transports = new HttpTransports({
      options: this.options,
      admit: (req, url, offered) => this.admit(req, url, offered),
      nodeId: store.nodeId ?? '',
      ...(store.forward ? { forward: (node, request, timeoutMs) => store.forward?.(node, request, timeoutMs) ?? Promise.resolve(null) } : {}),
    });
    this.heartbeat = new Heartbeat(this.clock, limits.pingIntervalMs, () => this.connections);
    this.heartbeat.start();
    httpServer.on('upgrade', this.onUpgradeBound);
  }

  /**
   * Serves `/healthz` and `/metrics` (unless `serveMetrics` is false); returns false when the
   * request is not one of them.
   */
  handleHttp(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '/').split('?')[0];
    if (path === this.options.path) {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://localhost');
      } catch {
        return false;
      }
      this.transports.handle(req, res, url);
      return true;
    }
    return handleHttp(this.httpContext, req, res);
  }

  /** Serves `/metrics` alone, for a listener of its own; false for any other request. */
  handleMetricsHttp(req: IncomingMessage, res: ServerResponse): boolean {
    return handleMetricsHttp(this.httpContext, req, res);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Runs one heartbeat round now (for tests and embedding apps with their own clock). */
  pingAll(): void {
    this.heartbeat.tick();
  }

  sendError(conn: Connection, code: ErrorCode, message: string, ref?: string): void {
    this.metrics.errors.inc({ code });
    conn.send(encodeServerMessage(ref === undefined ? { type: 'error', code, message } : { type: 'error', code, message, ref }));
    // unauthorized on join is final; everything else is final only when it keeps happening.
    // `unavailable` is the cluster's trouble, not the client's: never a strike.
    if (code === 'unauthorized' || (code !== 'unavailable' && conn.strikes.add(this.clock.now()))) {
      this.castOff(conn, closeCodeFor(code), code);
    }
  }

  /**
   * The ICE servers of a connection, minted at its first join and reused for every rejoin on
   * it while fresh: one TURN credential per signaling connection at a time. A session resumed
   * on a new connection gets the new connection's (the old one is closed), so a client mints
   * at most one per connection it opens (bounded by maxConnectionsPerIp) per half credential
   * lifetime: a rejoin after that gets a fresh one (see iceServersReuseMs), never a dead one.
   */
  iceServersFor(conn: Connection, peerId: string): IceServer[] {
    const opt = this.options.iceServers;
    if (!opt) return [];
    if (typeof opt !== 'function') return opt;
    const now = this.clock.now();
    if (conn.iceServers === null || now >= conn.iceServersStaleAt) {
      conn.iceServers = opt({ peerId, request: conn.request });
      conn.iceServersStaleAt = now + iceServersReuseMs(conn.iceServers, Date.now());
    }
    return conn.iceServers;
  }

  /** The connection is in a room: no join deadline while it stays there. */
  enteredRoom(conn: Connection): void {
    if (conn.joinTimer !== null) this.clock.clearTimeout(conn.joinTimer);
    conn.joinTimer = null;
  }

  /**
   * The connection is out of a room (just opened, or left): it must join within
   * `joinTimeoutMs` or be closed with 4008, so idle sockets do not hold memory and per-IP
   * slots for good.
   */
  leftRoom(conn: Connection): void {
    this.enteredRoom(conn);
    if (conn.closed) return;
    conn.joinTimer = this.clock.setTimeout(() => {
      conn.joinTimer = null;
      if (conn.session === null && !conn.closed) {
        this.castOff(conn, CLOSE_CODES.joinTimeout, 'join timeout');
      }
    }, this.options.limits.joinTimeoutMs);
  }

  /**
   * A frame would take this connection's unsent backlog past maxBufferedBytes: the client
   * does not read. Its session is detached at once (frames for it now go to the bounded
   * resume queue, the overflowing one first, by the queue's rules: not if unreliable) and
   * the connection closed with 1013: the close frame follows what is already buffered, so
   * a reader that was only slow reads everything sent so far, then the close, and resumes.
   * One that has not finished within slowReaderCloseMs is terminated, freeing its backlog
   * (ws would hold it for its 30 s closing-handshake timeout, and a source could hold
   * maxConnectionsPerIp of them, again and again by resuming); it loses what was buffered
   * and resumes. Senders are not told: they did nothing wrong, and the recipient is in its
   * resume grace period like any peer that lost its connection.
   */
  private readonly onOverflow = (conn: Connection, frame: string, relay?: RelayDelivery): void => {
    this.metrics.slowReaders.inc();
    this.logger.warn({ id: conn.session?.id ?? null, ip: conn.ip, buffered: conn.ws.bufferedAmount }, 'slow reader closed');
    const session = conn.session;
    if (session) {
      conn.session = null;
      session.conn = null;
      session.deliver(frame, relay);
      this.startGrace(session, 'closed');
    }
    this.castOff(conn, CLOSE_CODES.tooSlow, 'slow reader');
  };

  /**
   * A close the server starts (slow reader, abuse, replaced, join timeout): the close frame
   * waits behind whatever the client has not read, and ws would hold that backlog for its
   * 30 s closing-handshake timeout. A connection that has not finished closing within
   * slowReaderCloseMs is terminated instead, so every cast-off backlog is freed that soon.
   */
  castOff(conn: Connection, code: number, reason: string): void {
    conn.closeCodeSent = code;
    conn.close(code, reason);
    if (conn.castOffTimer === null && !conn.closed) {
      conn.castOffTimer = this.clock.setTimeout(() => {
        conn.castOffTimer = null;
        if (conn.closed) return;
        this.logger.debug({ ip: conn.ip, code, buffered: conn.ws.bufferedAmount }, 'cast-off connection terminated');
        conn.ws.terminate();
      }, this.options.limits.slowReaderCloseMs);
    }
  }

  clearGrace(session: Session): void {
    if (session.graceTimer !== null) {
      this.clock.clearTimeout(session.graceTimer);
      session.graceTimer = null;
    }
  }

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const started = performance.now();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      this.metrics.refusals.inc({ reason: 'bad-request' });
      return refuseUpgrade(socket, 'bad-request');
    }
    if (url.pathname !== this.options.path && this.options.refuseOtherPaths === false) return;
    // A client that resets during an async auth check must not crash the process.
    const onSocketError = (): void => {
      socket.destroy();
    };
    socket.on('error', onSocketError);
    const admitted = await this.admit(req, url, offeredSubprotocols(req).includes(SUBPROTOCOL));
    if (!admitted.ok) return refuseUpgrade(socket, admitted.reason);
    if (socket.destroyed) {
      admitted.refused();
      return;
    }
    let accepted = false;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      accepted = true;
      socket.off('error', onSocketError);
      this.metrics.upgradeSeconds.observe((performance.now() - started) / 1000);
      admitted.accept(ws);
    });
    // ws answers a malformed handshake (method, Upgrade, Sec-WebSocket-Key/-Version,
    // protocol list) with 400/405 itself and never calls back; it calls back synchronously
    // when it accepts (noServer, no verifyClient). Give the reserved slot back, or every
    // such request would lock its IP out for good.
    if (!accepted) {
      admitted.refused();
      this.metrics.refusals.inc({ reason: 'bad-request' });
    }
  }

  /**
   * Every check before a connection is accepted, for a WebSocket upgrade and an HTTP
   * transport session alike (`offered`: the client asked for our subprotocol). On success
   * the client's per-IP slot is taken: `accept` turns the socket into a connection,
   * `refused` gives the slot back.
   */
  private async admit(req: IncomingMessage, url: URL, offered: boolean): Promise<Admission> {
    this.pendingUpgrades++;
    // Reserve this IP's slot before the (possibly async) token and verify checks, so that
    // concurrent upgrades from one IP count against maxConnectionsPerIp, as pendingUpgrades
    // makes them count against maxConnections. Every refusal below gives it back.
    const ip = clientAddress(req, this.options.proxyTrust);
    const source = sourceKey(ip, this.options.limits.ipv6PrefixLength);
    this.perIp.set(source, (this.perIp.get(source) ?? 0) + 1);
    let check: UpgradeCheck;
    try {
      check = await checkUpgrade(req, url, {
        options: this.options,
        closing: this.state !== 'running',
        connections: this.connections.size + this.pendingUpgrades - 1,
        source,
        connectionsFrom: (from) => (this.perIp.get(from) ?? 0) - (from === source ? 1 : 0),
        offered,
      });
    } catch (err) {
      this.logger.error({ err }, 'upgrade check failed');
      check = { ok: false as const, reason: 'unauthorized' as const };
    } finally {
      this.pendingUpgrades--;
    }
    if (check.ok && this.state !== 'running') check = { ok: false as const, reason: 'shutting-down' as const };
    if (!check.ok) {
      this.releaseIp(source);
      this.metrics.refusals.inc({ reason: check.reason });
      if (check.reason === 'bad-host') this.warnBadHost(req.headers.host);
      return check;
    }
    const { grant } = check;
    return {
      ok: true,
      accept: (socket) => {
        const conn = new Connection(socket, req, ip, grant, this.clock.now(), this.options.limits, this.metrics.relay, this.onOverflow);
        conn.source = source;
        this.onConnection(conn);
      },
      refused: () => {
        this.releaseIp(source);
        this.metrics.refusals.inc({ reason: 'shutting-down' });
      },
    };
  }

  /**
   * A refused Host is most often a deployment that needs configuring, not an attack: say so
   * once per Host, for the first BAD_HOSTS_LOGGED of them (an attacker choosing Host names
   * must not grow the set or flood the log).
   */
  private warnBadHost(host: string | undefined): void {
    const name = String(host ?? '').slice(0, 255);
    if (this.badHostsLogged.has(name) || this.badHostsLogged.size >= BAD_HOSTS_LOGGED) return;
    this.badHostsLogged.add(name);
    this.logger.warn(
      { host: name },
      `refused a browser upgrade for Host "${name}" (DNS-rebinding check, 403 bad-host): if browsers reach this server by that name, ` +
        'add it to allowedHosts (--allowed-hosts), or set trustProxy (--trust-proxy) when a reverse proxy forwards it',
    );
  }

  private releaseIp(source: string): void {
    const left = (this.perIp.get(source) ?? 1) - 1;
    if (left <= 0) this.perIp.delete(source);
    else this.perIp.set(source, left);
  }

  private onConnection(conn: Connection): void {
    const { ws } = conn;
    this.connections.add(conn);
    ws.on('message', (data, isBinary) => this.onMessage(conn, data, isBinary));
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('error', (err) => {
      // A frame over maxPayload: ws sends close 1009 itself but then stops reading, so it never
      // sees the client's close frame and reports 1006. Remember 1009 for the log and metrics.
      if ((err as Error & { code?: unknown }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') conn.closeCodeSent = CLOSE_CODES.frameTooLarge;
      this.logger.debug({ err, ip: conn.ip }, 'websocket error');
    });
    ws.on('close', (code) => this.onClose(conn, code === 1006 && conn.closeCodeSent !== null ? conn.closeCodeSent : code));
    if (this.state !== 'running') conn.close(CLOSE_CODES.goingAway, 'server shutting down');
    else this.leftRoom(conn);
  }

  private onMessage(conn: Connection, data: RawData, isBinary: boolean): void {
    const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;
    conn.bytesIn += size;
    const now = this.clock.now();
    const { limits } = this.options;
    if (isBinary || size > limits.maxMessageBytes) {
      if (!conn.bucket.take(now)) return this.rateLimited(conn);
      if (isBinary && size <= limits.maxMessageBytes) return this.sendError(conn, 'bad-message', 'binary frames are not part of rallypoint.v1; send JSON text');
      return this.sendError(conn, 'too-large', `message of ${size} bytes exceeds ${limits.maxMessageBytes}`);
    }
    // ws hands text frames over as a Buffer (binaryType 'nodebuffer'); decode without copying.
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
    const decoded = decodeClientMessage(text);
    // Valid relay frames take from the relay buckets instead of the signaling one, so a
    // game's data cannot use up the tokens its ICE restarts need. Everything else (invalid
    // relay frames too) pays a signaling token before anything else is said about it.
    if (decoded.ok && decoded.message.type === 'relay') {
      if (!admitRelay(this, conn, decoded.message, size, now)) return;
    } else if (!conn.bucket.take(now)) return this.rateLimited(conn);
    if (!decoded.ok) return this.sendError(conn, decoded.code, decoded.message, decoded.ref);
    this.metrics.countMessage(decoded.message.type);
    // Messages of one connection are handled in order even when the store is async.
    const message = decoded.message;
    if (conn.pending)
      return this.chain(
        conn,
        conn.pending.then(() => this.dispatch(conn, message, size)),
      );
    const result = this.dispatch(conn, message, size);
    if (result) this.chain(conn, result);
  }

  /**
   * Makes `work` the tail of the connection's message chain. Whichever tail is last when it
   * settles clears the chain, so once the async work is done the next message is
   * dispatched synchronously again (the relay path allocates no promise).
   */
  private chain(conn: Connection, work: Promise<void>): void {
    const tail: Promise<void> = work.finally(() => {
      if (conn.pending === tail) conn.pending = null;
    });
    conn.pending = tail;
  }

  private rateLimited(conn: Connection): void {
    this.sendError(conn, 'rate-limited', `more than ${this.options.limits.messagesPerSecond} messages/s`);
  }

  /** Runs a handler; returns a promise only if the handler actually went async. */
  private dispatch(conn: Connection, msg: ClientMessage, size: number): Promise<void> | void {
    let result: Promise<void> | void;
    try {
      switch (msg.type) {
        case 'join':
          result = handleJoin(this, conn, msg);
          break;
        case 'signal':
          // Synchronous with a synchronous store: the relay path creates no promise.
          result = handleSignal(this, conn, msg);
          break;
        case 'leave':
          result = handleLeave(this, conn, msg);
          break;
        case 'relay':
          // Synchronous with a synchronous store, like signal.
          result = handleRelay(this, conn, msg, size);
          break;
        case 'ping':
          result = handlePing(conn, msg);
          break;
        default: {
          const never: never = msg;
          throw new Error(`unhandled message ${JSON.stringify(never)}`);
        }
      }
    } catch (err) {
      return this.handlerFailed(conn, msg, err);
    }
    if (result) return result.catch((err: unknown) => this.handlerFailed(conn, msg, err));
  }

  private handlerFailed(conn: Connection, msg: ClientMessage, err: unknown): void {
    this.logger.error({ err, id: conn.session?.id }, 'handler failed');
    // Echo the ref like every other error caused by a message (PROTOCOL.md, Frames).
    this.sendError(conn, 'internal', 'internal error', msg.ref);
  }

  private onClose(conn: Connection, code: number): void {
    conn.closed = true;
    this.connections.delete(conn);
    this.releaseIp(conn.source);
    this.enteredRoom(conn); // clears the join deadline
    if (conn.castOffTimer !== null) this.clock.clearTimeout(conn.castOffTimer);
    conn.castOffTimer = null;
    this.metrics.closes.inc({ code: closeCodeLabel(code) });
    this.closedBytes.in += conn.bytesIn;
    this.closedBytes.out += conn.bytesOut;
    const session = conn.session;
    this.logger.info(
      {
        event: 'close',
        id: session?.id ?? null,
        room: session?.room ?? null,
        code,
        durationMs: this.clock.now() - conn.openedAt,
        bytesIn: conn.bytesIn,
        bytesOut: conn.bytesOut,
        ip: conn.ip,
      },
      'connection closed',
    );
    if (!session) return;
    conn.session = null;
    session.conn = null;
    // What an HTTP transport session sent and its client never acknowledged: first in line
    // for the resume (a client moving to another transport acks what it got before it goes).
    if (conn.ws instanceof HttpSocket && conn.ws.leftover.length > 0) session.queue.unshift(...conn.ws.leftover.splice(0));
    // 1000/1001 are deliberate (the client closed or the page went away), and so is 1005:
    // a browser's ws.close() without a code sends a Close frame with no status
    // (RFC 6455 §7.1.5). Only a lost connection (1006, or a protocol error) may resume.
    const deliberate = code === CLOSE_CODES.normal || code === CLOSE_CODES.goingAway || code === NO_STATUS;
    const reason = conn.timedOut ? 'timeout' : 'closed';
    if (deliberate) {
      void endSession(this, session, reason).catch((err: unknown) => this.logger.error({ err }, 'leave failed'));
      return;
    }
    this.startGrace(session, reason);
  }

  /** Keeps a session without a connection for the resume grace period, then ends it. */
  startGrace(session: Session, reason: LeaveReason): void {
    const grace = this.options.limits.resumeGraceMs;
    if (grace === 0 || this.state === 'closing' || this.state === 'closed') {
      void endSession(this, session, reason).catch((err: unknown) => this.logger.error({ err }, 'leave failed'));
      return;
    }
    this.clearGrace(session);
    session.graceTimer = this.clock.setTimeout(() => {
      session.graceTimer = null;
      void endSession(this, session, reason).catch((err: unknown) => this.logger.error({ err }, 'leave failed'));
    }, grace);
  }

  /**
   * Forgets the session of member `id` of `room` held here, if any, without `peer-left`
   * (the cluster store decided its fate), closing its connection with `code`.
   */
  private forgetSession(room: string, id: string, code: number, reason: string): Session | undefined {
    let session: Session | undefined;
    for (const s of this.sessions.values()) if (s.id === id && s.room === room) session = s;
    if (!session) return undefined;
    this.clearGrace(session);
    this.sessions.delete(session.resumeToken);
    const conn = session.conn;
    session.conn = null;
    if (conn) {
      conn.session = null;
      this.castOff(conn, code, reason);
    }
    return session;
  }

  /** A cluster store moved the member to another node (it resumed there): let go, no peer-left. */
  private releaseSession(room: string, id: string): string[] {
    const session = this.forgetSession(room, id, CLOSE_CODES.replaced, 'session resumed elsewhere');
    if (!session) return [];
    this.metrics.resumes.inc({ result: 'moved' });
    return session.queue.splice(0);
  }

  /** A cluster store ended the member while this node could not reach it: drop it; its client rejoins. */
  private dropSession(room: string, id: string): void {
    this.forgetSession(room, id, CLOSE_CODES.serviceRestart, 'session ended by the cluster');
  }

  /**
   * Drains this node for a restart or deploy (cluster stores): refuses new upgrades (503,
   * and /healthz says closing), closes every client with 1012 so it reconnects through the
   * load balancer to another node and resumes there, waits until every session has moved
   * or its grace ran out (at most `timeoutMs`, default the grace plus 2 s), then closes.
   * Without a shared store nothing could take the sessions over: it only closes.
   */
  async drain(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state !== 'running' || !this.store.claim) return this.close();
    this.state = 'draining';
    const deadline = Date.now() + (opts.timeoutMs ?? this.options.limits.resumeGraceMs + 2_000);
    this.logger.info({ sessions: this.sessions.size }, 'draining: clients move to other nodes');
    for (const conn of [...this.connections]) this.castOff(conn, CLOSE_CODES.serviceRestart, 'node draining');
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return this.close();
  }

  /**
   * Stops the service: refuses new upgrades (503), closes every client with 1001, waits
   * up to `timeoutMs` for closing handshakes, terminates the rest, ends every session and
   * clears every timer. Closes the HTTP server only if this module created it. Idempotent.
   */
  close(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.closePromise ??= this.doClose(opts.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
    return this.closePromise;
  }

  private async doClose(timeoutMs: number): Promise<void> {
    this.state = 'closing';
    this.heartbeat.stop();
    const open = [...this.connections];
    const allClosed = Promise.all(open.map((c) => new Promise<void>((resolve) => (c.closed ? resolve() : c.ws.once('close', () => resolve())))));
    for (const conn of open) conn.close(CLOSE_CODES.goingAway, 'server shutting down');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([allClosed, timedOut]);
    clearTimeout(timer);
    for (const conn of this.connections) conn.ws.terminate();
    await allClosed;
    this.transports.close();
    // With a shared store the room goes on without this node: tell it who is gone.
    for (const session of new Set(this.sessions.values())) await endSession(this, session, 'closed').catch((err: unknown) => this.logger.error({ err }, 'leave failed'));
    this.sessions.clear();
    await this.store.close();
    this.httpServer.off('upgrade', this.onUpgradeBound);
    this.wss.close();
    if (this.ownsHttpServer) {
      await new Promise<void>((resolve) => {
        this.httpServer.close(() => resolve());
        this.httpServer.closeAllConnections();
      });
    }
    this.state = 'closed';
  }
}

/** Attaches the signaling service to an existing HTTP(S) server (its `upgrade` event). */
export function attachSignaling(server: HttpServer | HttpsServer, options: SignalingServerOptions = {}): SignalingServer {
  return new SignalingServer(server, options, false);
}

export interface ListenOptions extends SignalingServerOptions {
  /** Port; 0 picks a free one. Default 8080. */
  port?: number;
  /** Interface; default all. */
  host?: string;
  /** Handles HTTP requests that are not `/healthz` or `/metrics` (e.g. the demo page). */
  onRequest?: (req: IncomingMessage, res: ServerResponse) => void;
  /**
   * Serve `/metrics` on this port (0 picks one) instead of the signaling port, e.g. on an
   * interface only your monitoring reaches. Default: on the signaling port.
   */
  metricsPort?: number;
  /**
   * Interface of the metrics listener. Default `127.0.0.1`: loopback, where a scraper on the
   * same machine (or a sidecar) reaches it and strangers do not; give another interface for
   * a remote Prometheus.
   */
  metricsHost?: string;
}

export interface ListeningSignalingServer {
  server: SignalingServer;
  http: HttpServer;
  port: number;
  /** `http://host:port` (with `localhost` when bound to all interfaces). */
  url: string;
  /** The WebSocket URL clients connect to. */
  wsUrl: string;
  /** `http://host:port/metrics` of the metrics listener, when `metricsPort` was given. */
  metricsUrl?: string;
  close(opts?: { timeoutMs?: number }): Promise<void>;
}

async function listen(server: HttpServer, port: number, host: string | undefined): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const unspecified = addr.address === '0.0.0.0' || addr.address === '::';
  const hostPart = unspecified ? 'localhost' : addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return `http://${hostPart}:${addr.port}`;
}

/** Starts an HTTP server of its own that serves signaling, `/healthz` and `/metrics`. */
export async function listenSignaling(options: ListenOptions = {}): Promise<ListeningSignalingServer> {
  const { port = 8080, host, onRequest, metricsPort, metricsHost = '127.0.0.1', ...rest } = options;
  const notFound = (res: ServerResponse): void => void res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  let signaling: SignalingServer | null = null;
  const http = createServer((req, res) => {
    if (signaling?.handleHttp(req, res)) return;
    if (onRequest) return onRequest(req, res);
    notFound(res);
  });
  // The name the server was started for is one browsers may use (DNS-rebinding check).
  const names = host !== undefined && isIP(host) === 0 ? [host] : [];
  const s = new SignalingServer(http, { ...rest, ...(metricsPort !== undefined ? { serveMetrics: false } : {}) }, true, names);
  signaling = s;
  let url: string;
  try {
    url = await listen(http, port, host);
  } catch (err) {
    // A taken port: nothing may stay behind (the heartbeat interval, the registry's collectors).
    await s.close({ timeoutMs: 0 });
    throw err;
  }
  let metricsUrl: string | undefined;
  let metricsServer: HttpServer | undefined;
  let closing: Promise<void> | null = null;
  if (metricsPort !== undefined) {
    const m = createServer((req, res) => {
      if (!s.handleMetricsHttp(req, res)) notFound(res);
    });
    metricsServer = m;
    try {
      metricsUrl = `${await listen(m, metricsPort, metricsHost)}/metrics`;
    } catch (err) {
      await s.close({ timeoutMs: 0 });
      throw err;
    }
  }
  return {
    server: s,
    http,
    port: (http.address() as AddressInfo).port,
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}${s.options.path}`,
    ...(metricsUrl !== undefined ? { metricsUrl } : {}),
    // Without a metrics listener, the server's own (idempotent) close promise.
    close: (opts) => {
      if (metricsServer === undefined) return s.close(opts);
      const m = metricsServer;
      closing ??= s.close(opts).then(
        () =>
          new Promise<void>((resolve) => {
            m.close(() => resolve());
            m.closeAllConnections(); // a scraper's keep-alive socket must not hold the close
          }),
      );
      return closing;
    },
  };
}
