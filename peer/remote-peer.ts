import { TypedEmitter } from '../signaling/client/emitter.js';
import { Channel, DEFAULT_MAX_MESSAGE_SIZE, type FlowLimits, type MessageData, type SendData } from './channel.js';
import { channelInit, type ResolvedChannel } from './channels.js';
import { PeerError } from './errors.js';
import { Negotiator, type SignalPayload } from './negotiation.js';
import type { SendGate } from './runtime/types.js';
import { readTransportStats, type PeerPath, type PeerStats } from './stats.js';

export type RemotePeerState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export type RemotePeerEvents = {
  /** Every channel is open: `send` goes straight out. */
  connected: () => void;
  /** ICE lost the path; the peer is restarting ICE. */
  disconnected: () => void;
  message: (channel: string, data: MessageData) => void;
  'path-change': (path: PeerPath) => void;
  error: (err: PeerError) => void;
  close: () => void;
};

export interface RestartPolicy {
  /** Wait this long in `disconnected` before restarting ICE (it often recovers alone). */
  disconnectedGraceMs: number;
  /** First ICE restart delay; doubles per attempt up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RESTART: RestartPolicy = { disconnectedGraceMs: 2_000, baseDelayMs: 500, maxDelayMs: 15_000 };

export interface RemotePeerOptions {
  id: string;
  meta: Record<string, unknown> | undefined;
  localId: string;
  /** The side that creates the channels and makes the first offer (the newcomer). */
  initiator: boolean;
  channels: ResolvedChannel[];
  pc: RTCPeerConnection;
  /** The runtime's send gate, if it has one (see RtcRuntime.sendGate). */
  sendGate?: (pc: RTCPeerConnection) => SendGate | null;
  flow: FlowLimits;
  restart: RestartPolicy;
  send(payload: SignalPayload): void;
}

/** Reads the SCTP max message size, if the runtime exposes it (W3C RTCSctpTransport). */
function maxMessageSizeOf(pc: RTCPeerConnection): number {
  const sctp = (pc as { sctp?: { maxMessageSize?: unknown } | null }).sctp;
  const size = sctp?.maxMessageSize;
  return typeof size === 'number' && size > 0 && Number.isFinite(size) ? size : DEFAULT_MAX_MESSAGE_SIZE;
}

/**
 * Another peer of the room, and the WebRTC connection to it: named channels, perfect
 * negotiation, ICE restart with backoff on `disconnected`/`failed`, path and stats.
 */
export class RemotePeer extends TypedEmitter<RemotePeerEvents> {
  readonly id: string;
  readonly meta: Record<string, unknown> | undefined;
  private readonly pc: RTCPeerConnection;
  private readonly negotiator: Negotiator;
  private readonly channels = new Map<string, Channel>();
  private stateValue: RemotePeerState = 'connecting';
  private pathValue: PeerPath | null = null;
  private restartTimer: ReturnType<typeof setTimeout> | null = null;
  private restartAttempt = 0;
  private sendGate: SendGate | null | undefined;
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: RemotePeerOptions) {
    super();
    this.id = opts.id;
    this.meta = opts.meta;
    this.pc = opts.pc;
    // Perfect negotiation needs exactly one polite side; ids are unique, so compare them.
    this.negotiator = new Negotiator(this.pc, {
      polite: opts.localId < opts.id,
      send: opts.send,
      onError: (err) => this.emit('error', err),
    });
    for (const config of opts.channels) {
      this.channels.set(
        config.name,
        new Channel(
          config,
          opts.flow,
          () => maxMessageSizeOf(this.pc),
          (data) => this.emit('message', config.name, data),
          (err) => this.emit('error', err),
          () => this.maybeConnected(),
          () => this.gate(),
        ),
      );
    }
    this.pc.onconnectionstatechange = () => this.onConnectionState();
    this.pc.oniceconnectionstatechange = () => this.onConnectionState();
    if (opts.initiator) {
      for (const [name, channel] of this.channels) channel.attach(this.pc.createDataChannel(name, channelInit(channel.config)));
      void this.negotiator.offer();
    } else {
      this.pc.ondatachannel = (ev) => {
        const channel = this.channels.get(ev.channel.label);
        if (!channel) {
          this.emit('error', new PeerError('unknown-channel', `peer ${this.id} opened unknown channel "${ev.channel.label}"; configure it on both sides`));
          ev.channel.close();
          return;
        }
        channel.attach(ev.channel);
      };
    }
  }

  get state(): RemotePeerState {
    return this.stateValue;
  }

  /** `direct` or `relay` once connected; null before. */
  get path(): PeerPath | null {
    return this.pathValue;
  }

  get connected(): boolean {
    return this.stateValue === 'connected';
  }

  /** The channel names this peer has. */
  get channelNames(): string[] {
    return [...this.channels.keys()];
  }

  /** Whether a channel's RTCDataChannel is open. */
  isOpen(channel: string): boolean {
    return this.channels.get(channel)?.open ?? false;
  }

  /**
   * Sends on a named channel. Reliable channels: resolves when handed to the data channel,
   * waiting while it is above the high watermark; rejects `buffer-full` past the queue cap.
   * Unreliable channels: sends or drops at once. Rejects `too-large` above the negotiated
   * max message size, `unknown-channel`, `closed`.
   */
  send(channel: string, data: SendData): Promise<void> {
    const ch = this.channels.get(channel);
    if (!ch) return Promise.reject(new PeerError('unknown-channel', `no channel "${channel}" (have ${this.channelNames.join(', ')})`));
    if (this.stateValue === 'closed') return Promise.reject(new PeerError('closed', `peer ${this.id} is closed`));
    return ch.send(data);
  }

  /** Applies a signaling payload from this peer. */
  handleSignal(payload: SignalPayload): Promise<void> {
    return this.negotiator.receive(payload);
  }

  /** Connection statistics: RTT, bytes, loss on latest channels, selected candidate pair. */
  async stats(): Promise<PeerStats> {
    let lost = 0;
    let dropped = 0;
    for (const ch of this.channels.values()) {
      lost += ch.lost;
      dropped += ch.dropped;
    }
    const transport = this.stateValue === 'closed' ? null : readTransportStats(await this.pc.getStats());
    return {
      rttMs: transport?.rttMs,
      bytesSent: transport?.bytesSent ?? 0,
      bytesReceived: transport?.bytesReceived ?? 0,
      selectedPair: transport?.selectedPair ?? null,
      path: transport?.path ?? this.pathValue,
      packetsLost: lost,
      messagesDropped: dropped,
    };
  }

  /** The runtime's send gate, looked up once the transport exists. */
  private gate(): SendGate | null {
    if (this.sendGate) return this.sendGate;
    const gate = this.opts.sendGate?.(this.pc) ?? null;
    if (gate) this.sendGate = gate;
    return gate;
  }

  private maybeConnected(): void {
    if (this.stateValue === 'closed' || this.stateValue === 'connected') return;
    for (const ch of this.channels.values()) if (!ch.open) return;
    this.setConnected();
  }

  private setConnected(): void {
    this.stateValue = 'connected';
    this.restartAttempt = 0;
    this.clearRestart();
    this.emit('connected');
    void this.refreshPath();
  }

  private onConnectionState(): void {
    if (this.stateValue === 'closed') return;
    const state = this.pc.connectionState ?? this.pc.iceConnectionState;
    const ice = this.pc.iceConnectionState;
    if (state === 'connected' || ice === 'connected' || ice === 'completed') {
      if (this.stateValue === 'disconnected') {
        this.clearRestart();
        this.restartAttempt = 0;
        this.stateValue = 'connecting';
        this.maybeConnected();
        if ((this.stateValue as RemotePeerState) === 'connected') return;
      }
      void this.refreshPath();
      return;
    }
    if (state === 'disconnected' || state === 'failed' || ice === 'disconnected' || ice === 'failed') {
      if (this.stateValue === 'connected') {
        this.stateValue = 'disconnected';
        this.emit('disconnected');
      }
      const failed = state === 'failed' || ice === 'failed';
      this.scheduleRestart(failed ? 0 : this.opts.restart.disconnectedGraceMs);
    }
  }

  /**
   * ICE restart (RFC 8445 §2.4) with exponential backoff and jitter. Only the initiator
   * restarts, so both sides never offer at once; the other side answers.
   */
  private scheduleRestart(extraDelayMs: number): void {
    if (!this.opts.initiator || this.restartTimer !== null || this.stateValue === 'closed') return;
    const { baseDelayMs, maxDelayMs } = this.opts.restart;
    const backoff = this.restartAttempt === 0 ? 0 : Math.min(maxDelayMs, baseDelayMs * 2 ** (this.restartAttempt - 1));
    const delay = extraDelayMs + backoff * (0.5 + Math.random() / 2);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      const state = this.pc.connectionState ?? this.pc.iceConnectionState;
      if (this.stateValue === 'closed' || state === 'connected') return;
      this.restartAttempt++;
      this.pc.restartIce?.();
      void this.negotiator.offer(true).then(() => {
        // Still not connected after this attempt: try again later.
        if (this.stateValue !== 'connected' && this.stateValue !== 'closed') this.scheduleRestart(this.opts.restart.disconnectedGraceMs);
      });
    }, delay);
  }

  private clearRestart(): void {
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    this.restartTimer = null;
  }

  private async refreshPath(): Promise<void> {
    let path: PeerPath | null = null;
    try {
      path = readTransportStats(await this.pc.getStats()).path;
    } catch {
      return; // getStats on a closing connection
    }
    if (path && path !== this.pathValue && this.stateValue !== 'closed') {
      this.pathValue = path;
      this.emit('path-change', path);
    }
  }

  /**
   * Closes channels and the connection, clears timers. Idempotent; resolves when the
   * runtime has released the connection (werift closes its sockets asynchronously).
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.stateValue = 'closed';
    this.clearRestart();
    this.negotiator.close();
    for (const ch of this.channels.values()) ch.close();
    this.pc.onconnectionstatechange = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.ondatachannel = null;
    let done: unknown;
    try {
      done = (this.pc.close as () => unknown)();
    } catch {
      // Closing twice is harmless.
    }
    this.closing = Promise.resolve(done).then(
      () => undefined,
      () => undefined,
    );
    this.emit('close');
    this.removeAllListeners();
    return this.closing;
  }
}
