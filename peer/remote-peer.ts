import { TypedEmitter } from '../signaling/client/emitter.js';
import type { Channel, FlowLimits, MessageData, Route, SendData } from './channel.js';
import { channelInit, createChannel, type ResolvedChannel } from './channels.js';
import { type Clock, systemClock, type Timer, timer } from './clock.js';
import { type Connection, disposeConnection, maxMessageSizeOf } from './connection.js';
import { PeerError } from './errors.js';
import type { FallbackLink, RelayFrameIn } from './fallback-link.js';
import { Liveness } from './liveness.js';
import { Negotiator, type PeerCaps, type SignalPayload } from './negotiation.js';
import type { FallbackPolicy, RestartPolicy } from './policies.js';
import { Recovery } from './recovery.js';
import type { SendGate } from './runtime/types.js';
import { type PeerPath, type PeerStats, readTransportStats } from './stats.js';

export { DEFAULT_FALLBACK, DEFAULT_RESTART, type FallbackPolicy, type RestartPolicy } from './policies.js';

export type RemotePeerState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export type RemotePeerEvents = {
  /** `send` goes out: every data channel is open, or the peer fell back to the WebSocket fallback. */
  connected: () => void;
  /** ICE lost the path; the connection is being recovered (and falls back to the WebSocket if that takes too long). */
  disconnected: () => void;
  message: (channel: string, data: MessageData) => void;
  'path-change': (path: PeerPath) => void;
  error: (err: PeerError) => void;
  close: () => void;
};

export interface RemotePeerOptions {
  id: string;
  meta: Record<string, unknown> | undefined;
  localId: string;
  /** The side that creates the channels and makes the first offer (the newcomer). */
  initiator: boolean;
  channels: ResolvedChannel[];
  createConnection(): RTCPeerConnection;
  caps: PeerCaps;
  /** The runtime's send gate, if it has one (see RtcRuntime.sendGate). */
  sendGate?: (pc: RTCPeerConnection) => SendGate | null;
  flow: FlowLimits;
  restart: RestartPolicy;
  /** The WebSocket fallback to this peer, and when to use it; null/false: never. */
  fallbackLink: FallbackLink | null;
  fallback: FallbackPolicy | false;
  send(payload: SignalPayload): void;
  /** Timers and time; default the system clock. */
  clock?: Clock;
}

/**
 * Another peer of the room, and the WebRTC connection to it: named channels, perfect
 * negotiation, recovery with backoff on `disconnected`/`failed` (ICE restart where both
 * runtimes support it, else a new connection), path and stats.
 */
export class RemotePeer extends TypedEmitter<RemotePeerEvents> {
  readonly #opts: RemotePeerOptions;
  readonly id: string;
  readonly meta: Record<string, unknown> | undefined;
  #conn: Connection | null = null;
  readonly #channels = new Map<string, Channel>();
  #stateValue: RemotePeerState = 'connecting';
  #pathValue: PeerPath | null = null;
  #remoteCaps: PeerCaps | null = null;
  readonly #recovery: Recovery;
  #closing: Promise<void> | null = null;
  /** Replaced connections still closing (werift releases its sockets asynchronously). */
  readonly #disposing = new Set<Promise<void>>();
  /** Where sends go: the data channels, or the WebSocket fallback. */
  #route: Route = 'rtc';
  /** Every data channel of the current connection is open. */
  #rtcUp = false;
  /** Falls back when ICE has not connected `fallback.afterMs` after it started or was lost. */
  readonly #fallbackTimer: Timer;
  /** The data channel path's liveness check (peer/liveness.ts); none without fallback. */
  readonly #liveness: Liveness | undefined;

  constructor(opts: RemotePeerOptions) {
    super();
    this.#opts = opts;
    this.id = opts.id;
    this.meta = opts.meta;
    const clock = opts.clock ?? systemClock;
    this.#fallbackTimer = timer(clock);
    this.#recovery = new Recovery(opts.restart, clock, {
      connected: () => this.#rtcUp,
      attempt: (n) => this.#attemptRecovery(n),
    });
    for (const config of opts.channels) {
      this.#channels.set(
        config.name,
        createChannel(
          config,
          opts.flow,
          {
            maxMessageSize: () => maxMessageSizeOf(this.#conn?.pc),
            gate: () => this.#gate(),
            message: (data) => this.emit('message', config.name, data),
            error: (err) => {
              this.emit('error', err);
              // A peer that broke the framing is not talked to any more (README, peer errors).
              if (err.code === 'protocol-violation') void this.close();
            },
            open: () => this.#maybeConnected(),
            lost: () => this.#onChannelLost(),
            route: () => this.#route,
            fallback: () => this.#opts.fallbackLink,
            heard: () => this.#liveness?.heard(),
          },
          clock,
        ),
      );
    }
    const fallback = opts.fallback;
    // Only a reliable channel can carry keepalives and answer probes; with none (every channel
    // configured unreliable) silence proves nothing, and failure is left to ICE. Decided here,
    // once: a keepalive that fails to go out (send threw, the channel is closing) must not
    // count as "nothing to check", or a dying path would never be declared dead.
    if (fallback && opts.channels.some((c) => c.reliable)) {
      this.#liveness = new Liveness(fallback.afterMs, clock, this.#channels, {
        // Only while on the data channels (#rtcUp is false whenever the route is the WebSocket).
        up: () => this.#rtcUp,
        dead: () => {
          this.#recovery.schedule(0);
          this.#rtcLost(true);
        },
      });
    }
    this.#armFallback();
    if (opts.initiator) this.#connect(0);
  }

  get state(): RemotePeerState {
    return this.#stateValue;
  }

  /** `direct` or `relay` once connected, `websocket` after a fallback; null before. */
  get path(): PeerPath | null {
    return this.#pathValue;
  }

  get connected(): boolean {
    return this.#stateValue === 'connected';
  }

  /** The channel names this peer has. */
  get channelNames(): string[] {
    return [...this.#channels.keys()];
  }

  /** The current RTCPeerConnection (replaced when the connection is rebuilt), for getStats() and the like. */
  get connection(): RTCPeerConnection | null {
    return this.#conn?.pc ?? null;
  }

  /** Connection generation (increments each time the connection is rebuilt). */
  get generation(): number {
    return this.#conn?.gen ?? 0;
  }

  /** Whether a channel's RTCDataChannel is open. */
  isOpen(channel: string): boolean {
    return this.#channels.get(channel)?.open ?? false;
  }

  /**
   * Sends on a named channel. Reliable channels: resolves when handed to the data channel,
   * waiting while it is above the high watermark; rejects `buffer-full` past the queue cap.
   * Unreliable channels: sends or drops at once. Rejects `too-large` above the negotiated
   * max message size or 16 MiB (MAX_MESSAGE_BYTES), `unknown-channel`, `closed`.
   */
  send(channel: string, data: SendData): Promise<void> {
    const ch = this.#channels.get(channel);
    if (!ch) return Promise.reject(new PeerError('unknown-channel', `no channel "${channel}" (have ${this.channelNames.join(', ')})`));
    if (this.#stateValue === 'closed') return Promise.reject(new PeerError('closed', `peer ${this.id} is closed`));
    return ch.send(data);
  }

  /**
   * Recovers the connection now, e.g. after the app saw the network change: an ICE
   * restart (RFC 8445 §2.4) where both runtimes keep their channels through one, else a new
   * connection. Only the initiator rebuilds; the other side asks it to.
   */
  restartIce(): Promise<void> {
    if (this.#stateValue === 'closed') return Promise.resolve();
    return this.#recovery.run();
  }

  #unknownChannel(name: string): void {
    this.emit('error', new PeerError('unknown-channel', `peer ${this.id} used unknown channel "${name}"; configure it on both sides`));
  }

  /** A relay frame from this peer, for one of its channels. @internal The room calls it. */
  handleRelay(frame: RelayFrameIn): void {
    if (this.#stateValue === 'closed') return;
    const ch = this.#channels.get(frame.channel);
    if (!ch) {
      this.#unknownChannel(frame.channel);
      return;
    }
    ch.receiveRelay(frame);
  }

  /** Applies a signaling payload from this peer. @internal The room calls it. */
  handleSignal(payload: SignalPayload): Promise<void> {
    if (this.#stateValue === 'closed') return Promise.resolve();
    if (payload.caps) this.#remoteCaps = payload.caps;
    if (payload.reconnect) {
      // The other side lost the connection and cannot rebuild it itself.
      if (this.#opts.initiator) this.#recovery.schedule(0);
      return Promise.resolve();
    }
    const gen = payload.gen ?? 0;
    if (payload.fallback) {
      // The other side gave up on this connection: follow it to the fallback (its data
      // channel may look open here for a long while: werift notices a dead path only when
      // ICE consent fails, about 30 s), unless the notice is about a connection since replaced.
      if (!this.#conn || gen >= this.#conn.gen) this.#rtcLost(true, false);
      return Promise.resolve();
    }
    if (!this.#conn || gen > this.#conn.gen) {
      // Only the initiator starts generations; a newer one from it replaces ours.
      if (this.#opts.initiator) return Promise.resolve();
      this.#connect(gen);
    }
    const conn = this.#conn as Connection;
    if (gen < conn.gen) return Promise.resolve(); // from a connection that was replaced
    return conn.negotiator.receive(payload);
  }

  /** Connection statistics: RTT, bytes, loss on latest channels, selected candidate pair. */
  async stats(): Promise<PeerStats> {
    let lost = 0;
    let dropped = 0;
    for (const ch of this.#channels.values()) {
      lost += ch.lost;
      dropped += ch.dropped;
    }
    const pc = this.#conn?.pc;
    const transport = this.#stateValue === 'closed' || !pc ? null : readTransportStats(await pc.getStats());
    return {
      rttMs: undefined,
      bytesSent: 0,
      bytesReceived: 0,
      selectedPair: null,
      ...transport,
      path: this.#route === 'websocket' ? 'websocket' : (transport?.path ?? this.#pathValue),
      packetsLost: lost,
      messagesDropped: dropped,
    };
  }

  /** Creates connection generation `gen`, replacing the current one (channels are kept). */
  #connect(gen: number): void {
    const old = this.#conn;
    if (old) {
      const done = disposeConnection(old);
      this.#disposing.add(done);
      void done.then(() => this.#disposing.delete(done));
      if (this.#rtcUp) this.#rtcLost(false, false);
    }
    const pc = this.#opts.createConnection();
    const conn: Connection = {
      gen,
      pc,
      gate: undefined,
      // Perfect negotiation needs exactly one polite side; ids are unique, so compare them.
      negotiator: new Negotiator(pc, {
        polite: this.#opts.localId < this.id,
        send: (payload) => {
          if (this.#conn !== conn) return;
          this.#opts.send(payload.description ? { ...payload, gen, caps: this.#opts.caps } : { ...payload, gen });
        },
        onError: (err) => {
          if (this.#conn === conn) this.emit('error', err);
        },
      }),
    };
    this.#conn = conn;
    pc.onconnectionstatechange = () => this.#onConnectionState(conn);
    pc.oniceconnectionstatechange = () => this.#onConnectionState(conn);
    if (this.#opts.initiator) {
      for (const [name, channel] of this.#channels) channel.attach(pc.createDataChannel(name, channelInit(channel.config)));
      void conn.negotiator.offer();
    } else {
      pc.ondatachannel = (ev) => {
        if (this.#conn !== conn) return;
        const channel = this.#channels.get(ev.channel.label);
        if (!channel) {
          this.#unknownChannel(ev.channel.label);
          ev.channel.close();
          return;
        }
        channel.attach(ev.channel);
      };
    }
  }

  /** The runtime's send gate, looked up once the transport exists. */
  #gate(): SendGate | null {
    const conn = this.#conn;
    // Kept once the runtime has one (it may not before the transport exists).
    if (!conn) return null;
    conn.gate ||= this.#opts.sendGate?.(conn.pc) ?? null;
    return conn.gate;
  }

  #maybeConnected(): void {
    if (this.#stateValue === 'closed' || this.#rtcUp) return;
    for (const ch of this.#channels.values()) if (!ch.open) return;
    this.#rtcUp = true;
    this.#liveness?.heard();
    this.#recovery.reset();
    this.#fallbackTimer.stop();
    if (this.#route === 'websocket') {
      // Back to peer-to-peer: what the fallback had not delivered yet goes again on the data
      // channels, in order (the receiver drops duplicates).
      this.#route = 'rtc';
      for (const ch of this.#channels.values()) ch.resend();
    }
    if (this.#stateValue !== 'connected') {
      this.#stateValue = 'connected';
      this.emit('connected');
    }
    void this.#refreshPath();
  }

  /**
   * The current connection stopped carrying data (`failed`: for good). On the data channel
   * path the app sees `disconnected`, and the peer falls back to the WebSocket at once if the
   * connection failed, else after the fallback delay unless it recovers first. `notify`:
   * tell the other side when we fall back.
   */
  #rtcLost(failed: boolean, notify = true): void {
    this.#rtcUp = false;
    if (this.#route === 'rtc' && this.#stateValue === 'connected') {
      this.#stateValue = 'disconnected';
      this.emit('disconnected');
    }
    if (failed) this.#fallBack(notify);
    else this.#armFallback();
  }

  #canFallBack(): boolean {
    return this.#opts.fallback !== false && this.#opts.fallbackLink?.enabled === true && this.#stateValue !== 'closed';
  }

  #armFallback(): void {
    if (this.#route === 'websocket' || !this.#canFallBack()) return;
    this.#fallbackTimer.start(
      () => {
        if (!this.#rtcUp) this.#fallBack(true);
      },
      (this.#opts.fallback as FallbackPolicy).afterMs, // #canFallBack: not false
    );
  }

  /**
   * Carries the channels over the WebSocket fallback from now on; ICE keeps being retried in
   * the background (recovery with backoff) and the peer moves back once it connects.
   */
  #fallBack(notify: boolean): void {
    if (this.#route === 'websocket' || !this.#canFallBack()) return;
    this.#fallbackTimer.stop();
    this.#route = 'websocket';
    if (notify) this.#opts.send({ gen: this.#conn?.gen ?? 0, fallback: true });
    for (const ch of this.#channels.values()) ch.resend();
    if (this.#stateValue !== 'connected') {
      this.#stateValue = 'connected';
      this.emit('connected');
    }
    if (this.#pathValue !== 'websocket') {
      this.#pathValue = 'websocket';
      this.emit('path-change', 'websocket');
    }
    // Keep retrying ICE in the background. Not at once: a connection that is merely slow
    // (a loaded machine, a lossy path) may still connect, and rebuilding it now would throw
    // that progress away, over and over. A failed one was already scheduled by its handler.
    this.#recovery.schedule(this.#opts.restart.attemptTimeoutMs);
  }

  /**
   * A data channel closed under us: the remote closed its connection without a signaling
   * `leave` reaching us yet, or the transport died before ICE noticed. If the peer really
   * left, `peer-left` closes this peer within the grace; otherwise recover.
   */
  #onChannelLost(): void {
    if (this.#stateValue === 'closed') return;
    this.#rtcLost(false);
    this.#recovery.schedule(this.#opts.restart.disconnectedGraceMs);
  }

  #onConnectionState(conn: Connection): void {
    if (this.#stateValue === 'closed' || this.#conn !== conn) return;
    const pc = conn.pc;
    const state = pc.connectionState ?? pc.iceConnectionState;
    const ice = pc.iceConnectionState;
    if (state === 'connected' || ice === 'connected' || ice === 'completed') {
      this.#maybeConnected();
      if (this.#route === 'rtc') void this.#refreshPath();
      return;
    }
    if (state === 'disconnected' || state === 'failed' || ice === 'disconnected' || ice === 'failed') {
      const failed = state === 'failed' || ice === 'failed';
      // Recovery first: a failed connection is rebuilt at once, not after the fallback's delay.
      this.#recovery.schedule(failed ? 0 : this.#opts.restart.disconnectedGraceMs);
      this.#rtcLost(failed);
    }
  }

  /**
   * Recovery attempt `attempt` (peer/recovery.ts): an ICE restart (RFC 8445 §2.4) while both
   * runtimes keep their channels through one and `restart.iceRestarts` allows, else the
   * next connection generation; a non-initiator asks the initiator.
   */
  async #attemptRecovery(attempt: number): Promise<void> {
    if (!this.#opts.initiator) {
      // Only the initiator creates connections (so both sides never build one at once).
      this.#opts.send({ reconnect: true, gen: this.#conn?.gen ?? 0 });
      return;
    }
    const iceRestartWorks = this.#opts.caps.iceRestart && this.#remoteCaps?.iceRestart === true;
    const conn = this.#conn;
    if (conn && iceRestartWorks && attempt <= this.#opts.restart.iceRestarts) {
      conn.pc.restartIce?.();
      await conn.negotiator.offer(true);
      return;
    }
    this.#connect((conn?.gen ?? 0) + 1);
  }

  async #refreshPath(): Promise<void> {
    const pc = this.#conn?.pc;
    if (!pc) return;
    let path: PeerPath | null = null;
    try {
      path = readTransportStats(await pc.getStats()).path;
    } catch {
      return; // getStats on a closing connection
    }
    if (path && path !== this.#pathValue && this.#stateValue !== 'closed' && this.#route === 'rtc') {
      this.#pathValue = path;
      this.emit('path-change', path);
    }
  }

  /**
   * Closes channels and the connection, clears timers. Idempotent; resolves when the
   * runtime has released the connection (werift closes its sockets asynchronously).
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#stateValue = 'closed';
    this.#liveness?.stop();
    this.#recovery.close();
    this.#fallbackTimer.stop();
    for (const ch of this.#channels.values()) ch.close();
    const conn = this.#conn;
    // Resolves once this connection and every one it replaced have released their sockets.
    this.#closing = Promise.all([conn ? disposeConnection(conn) : undefined, ...this.#disposing]).then(() => undefined);
    this.emit('close');
    this.removeAllListeners();
    return this.#closing;
  }
}
