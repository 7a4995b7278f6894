import type { ReconnectPolicy } from '../signaling/client/backoff.js';
import { SignalingClient, type SignalingClientOptions, type Transport, type WebSocketConstructor, type Welcome } from '../signaling/client/client.js';
import { TypedEmitter } from '../signaling/client/emitter.js';
import type { SignalingError } from '../signaling/client/errors.js';
import type { LeaveReason } from '../signaling/protocol/codes.js';
import type { PeerInfo } from '../signaling/protocol/schemas.js';
import { DEFAULT_FLOW, type FlowLimits, type MessageData, type SendData } from './channel.js';
import { type ChannelOptions, type ResolvedChannel, resolveChannels } from './channels.js';
import type { Clock } from './clock.js';
import { PeerError } from './errors.js';
import { FallbackPort, type RelayFrameIn } from './fallback-link.js';
import { DEFAULT_FALLBACK, DEFAULT_RESTART, type FallbackPolicy, RemotePeer, type RestartPolicy } from './remote-peer.js';
import { nativeRuntime } from './runtime/browser.js';
import type { RtcRuntime } from './runtime/types.js';
import { toSignalPayload } from './signal-payload.js';
import type { PeerPath } from './stats.js';

/**
 * The signaling client's timeouts (PROTOCOL.md, Liveness) and its ladder of transports
 * (`transports`, `probeMs`, `upgradeRetryMs`, `fetch`; PROTOCOL.md, HTTP transports):
 * joinRoom hands its options to the SignalingClient as they are.
 */
type ClientOptions = Pick<SignalingClientOptions, 'welcomeTimeoutMs' | 'pingAfterMs' | 'pingTimeoutMs' | 'transports' | 'probeMs' | 'upgradeRetryMs' | 'fetch'>;

export interface JoinRoomOptions extends ClientOptions {
  /** The signaling service's WebSocket URL. */
  url: string;
  room: string;
  token?: string;
  meta?: Record<string, unknown>;
  /** Extra or overridden channels; `reliable` and `unreliable` always exist. */
  channels?: Record<string, ChannelOptions>;
  /** ICE servers; default those the signaling service hands out in `welcome`. */
  iceServers?: RTCIceServer[];
  /** Other RTCConfiguration fields, e.g. `{ iceTransportPolicy: 'relay' }`. */
  rtcConfig?: Omit<RTCConfiguration, 'iceServers'>;
  /** WebRTC implementation; default the global one (browsers). */
  rtc?: RtcRuntime;
  /** WebSocket implementation for signaling; default the global one. */
  WebSocket?: WebSocketConstructor;
  /** Signaling reconnect policy (see SignalingClient). */
  reconnect?: ReconnectPolicy | false;
  flow?: Partial<FlowLimits>;
  restart?: Partial<RestartPolicy>;
  /**
   * Per peer, carry the channels over the signaling connection (a WebSocket, or the SSE or
   * long-poll session that replaced it) when ICE fails or has not
   * connected within `afterMs` (default 5000), and go back once ICE connects again. `false`:
   * never (the peer just stays disconnected while ICE is retried). Needs relay enabled on
   * the server (it is by default).
   */
  fallback?: Partial<FallbackPolicy> | false;
  /**
   * The peer library's timers and time (recovery, fallback, liveness, acknowledgements,
   * pacing); default the system clock. For tests that drive time; the signaling client keeps
   * its own timers.
   */
  clock?: Clock;
}

export interface RoomMessage {
  peer: RemotePeer;
  channel: string;
  data: MessageData;
}

export type RoomEvents = {
  /** A peer is in the room; its connection is being set up. */
  'peer-joined': (peer: RemotePeer) => void;
  /** Every channel to the peer is open. */
  'peer-connected': (peer: RemotePeer) => void;
  /** ICE lost the path to the peer; it is being restarted. */
  'peer-disconnected': (peer: RemotePeer) => void;
  'peer-left': (peer: RemotePeer, reason: LeaveReason) => void;
  message: (message: RoomMessage) => void;
  'path-change': (peer: RemotePeer, path: PeerPath) => void;
  error: (error: PeerError | SignalingError, peer?: RemotePeer) => void;
  /** The room is left for good (leave(), or signaling gave up). */
  close: () => void;
};

/** A room of peers: a WebRTC connection to every other member (full mesh). */
export class Room extends TypedEmitter<RoomEvents> {
  readonly #signaling: SignalingClient;
  readonly #options: JoinRoomOptions;
  readonly #remote = new Map<string, RemotePeer>();
  readonly #channels: ResolvedChannel[];
  readonly #runtime: RtcRuntime;
  readonly #flow: FlowLimits;
  readonly #restart: RestartPolicy;
  readonly #fallback: FallbackPolicy | false;
  #fallbackPort: FallbackPort;
  #localId: string;
  #iceServers: RTCIceServer[];
  #closed = false;
  #leaving: Promise<void> | null = null;

  constructor(signaling: SignalingClient, welcome: Welcome, options: JoinRoomOptions) {
    super();
    this.#signaling = signaling;
    this.#options = options;
    this.#channels = resolveChannels(options.channels);
    this.#runtime = options.rtc ?? nativeRuntime();
    this.#flow = { ...DEFAULT_FLOW, ...options.flow };
    this.#restart = { ...DEFAULT_RESTART, ...options.restart };
    this.#fallback = options.fallback === false ? false : { ...DEFAULT_FALLBACK, ...options.fallback };
    // Reads the relay limits of the welcome the client holds.
    this.#fallbackPort = new FallbackPort(signaling, options.clock);
    this.#localId = welcome.id;
    this.#iceServers = options.iceServers ?? welcome.iceServers;
    signaling.on('peer-joined', (info) => this.#addPeer(info, false));
    signaling.on('peer-left', (id, reason) => this.#removePeer(id, reason));
    signaling.on('signal', (from, data) => this.#onSignal(from, data));
    signaling.on('relay', (frame) => this.#onRelay(frame));
    signaling.on('error', (err) => this.emit('error', err));
    signaling.on('open', (w) => this.#onWelcome(w));
    signaling.on('close', () => void this.leave());
  }

  /** Our id in the room. */
  get id(): string {
    return this.#localId;
  }

  get name(): string {
    return this.#options.room;
  }

  /** How signaling reaches the server (SignalingClient.transport: the last that worked). */
  get transport(): Transport | null {
    return this.#signaling.transport;
  }

  /** The other peers, by id. */
  get peers(): ReadonlyMap<string, RemotePeer> {
    return this.#remote;
  }

  /** Sends to every peer whose channels are open; resolves when all sends settled. */
  async broadcast(channel: string, data: SendData): Promise<void> {
    const sends = [...this.#remote.values()].filter((p) => p.connected).map((p) => p.send(channel, data));
    const results = await Promise.allSettled(sends);
    for (const r of results) if (r.status === 'rejected' && r.reason instanceof PeerError && r.reason.code !== 'closed') throw r.reason;
  }

  /**
   * Leaves the room: closes every connection, the signaling client and every timer.
   * Idempotent; resolves when sockets are released.
   */
  leave(): Promise<void> {
    if (this.#leaving) return this.#leaving;
    this.#closed = true;
    const closing = [...this.#remote.values()].map((p) => p.close());
    this.#remote.clear();
    this.#fallbackPort.close();
    this.#signaling.removeAllListeners();
    closing.push(this.#signaling.leave());
    this.#leaving = Promise.all(closing).then(() => undefined);
    this.emit('close');
    this.removeAllListeners();
    return this.#leaving;
  }

  /** Connects to the peers already in the room; as the newcomer we offer. @internal joinRoom calls it. */
  connectExisting(peers: PeerInfo[]): void {
    for (const info of peers) this.#addPeer(info, true);
  }

  #onWelcome(welcome: Welcome): void {
    if (welcome.resumed || welcome.id === this.#localId) {
      // Back as ourselves. Who came and went while we were away may reach us only through the
      // welcome's current peers (PROTOCOL.md, Resume): what a server queues for us is bounded,
      // and a cluster queues signals for a member whose node died, not membership events.
      // Newcomers offer to us, as to anyone already in the room; whoever is gone is gone.
      const present = new Set(welcome.peers.map((p) => p.id));
      for (const id of [...this.#remote.keys()]) if (!present.has(id)) this.#removePeer(id, 'closed');
      for (const info of welcome.peers) this.#addPeer(info, false);
      return;
    }
    // The signaling session could not be resumed: we are a new peer to everyone.
    for (const [id, peer] of this.#remote) {
      this.#remote.delete(id);
      void peer.close();
      this.emit('peer-left', peer, 'closed');
    }
    this.#localId = welcome.id;
    this.#iceServers = this.#options.iceServers ?? welcome.iceServers;
    this.#fallbackPort.close();
    this.#fallbackPort = new FallbackPort(this.#signaling, this.#options.clock);
    this.connectExisting(welcome.peers);
  }

  #addPeer(info: PeerInfo, initiator: boolean): void {
    if (this.#closed || this.#remote.has(info.id)) return;
    const peer = new RemotePeer({
      id: info.id,
      meta: info.meta,
      localId: this.#localId,
      initiator,
      channels: this.#channels,
      createConnection: () => new this.#runtime.RTCPeerConnection({ ...this.#options.rtcConfig, iceServers: this.#iceServers }),
      caps: { iceRestart: this.#runtime.iceRestart ?? true },
      ...(this.#runtime.sendGate ? { sendGate: (c: RTCPeerConnection) => this.#runtime.sendGate?.(c) ?? null } : {}),
      flow: this.#flow,
      restart: this.#restart,
      fallbackLink: this.#fallbackPort.link(info.id),
      fallback: this.#fallback,
      clock: this.#options.clock,
      send: (payload) => {
        try {
          this.#signaling.signal(info.id, payload);
        } catch (err) {
          this.emit('error', new PeerError('signaling', `cannot signal ${info.id}: ${(err as Error).message}`, { cause: err }), peer);
        }
      },
    });
    this.#remote.set(info.id, peer);
    peer.on('connected', () => this.emit('peer-connected', peer));
    peer.on('disconnected', () => this.emit('peer-disconnected', peer));
    peer.on('message', (channel, data) => this.emit('message', { peer, channel, data }));
    peer.on('path-change', (path) => this.emit('path-change', peer, path));
    peer.on('error', (err) => this.emit('error', err, peer));
    this.emit('peer-joined', peer);
  }

  #removePeer(id: string, reason: LeaveReason): void {
    const peer = this.#remote.get(id);
    if (!peer) return;
    this.#remote.delete(id);
    void peer.close();
    this.emit('peer-left', peer, reason);
  }

  #onRelay(frame: RelayFrameIn): void {
    const peer = this.#remote.get(frame.from);
    if (!peer) return; // a frame still in flight from a peer that left
    peer.handleRelay(frame);
  }

  #onSignal(from: string, data: unknown): void {
    const peer = this.#remote.get(from);
    const payload = toSignalPayload(data);
    if (!peer || !payload) {
      this.emit('error', new PeerError('signaling', peer ? `malformed signal from ${from}` : `signal from unknown peer ${from}`));
      return;
    }
    void peer.handleSignal(payload);
  }
}

/**
 * Joins a room through the signaling service and connects to every other peer in it.
 * Resolves once joined (connections open in the background: see `peer-connected`).
 */
export async function joinRoom(options: JoinRoomOptions): Promise<Room> {
  // Validate channels and the runtime before touching the network.
  resolveChannels(options.channels);
  if (!options.rtc) nativeRuntime();
  // The room's options are a superset of the client's (url, room, token, meta, WebSocket,
  // reconnect and the timeouts); the client reads only its own.
  const signaling = new SignalingClient(options);
  const welcome = await signaling.connect();
  const room = new Room(signaling, welcome, options);
  room.connectExisting(welcome.peers);
  return room;
}
