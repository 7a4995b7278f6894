/**
 * The fallback over the signaling connection: channel messages to peers whose ICE failed
 * travel as signaling `relay` frames (the wire name). One FallbackPort per room paces every
 * peer's frames below the server's relay limits (from `welcome.limits`) and the socket's
 * buffer, so a well-behaved client is never refused; unreliable frames wait in a latest-wins slot per peer and
 * channel instead of queueing stale state behind new state.
 */

import { type Clock, systemClock, timer } from './clock.js';

/** A frame as the peer library hands it to the signaling client. */
export interface RelayFrameOut {
  data?: string | Uint8Array;
  seq?: number;
  ack?: number;
  more?: boolean;
  unreliable?: boolean;
}

/** A frame as the signaling client delivers it (`from` stamped by the server). */
export interface RelayFrameIn extends RelayFrameOut {
  from: string;
  channel: string;
}

/** What the port needs from the signaling client. */
export interface FallbackTransport {
  relay(to: string, channel: string, frame: RelayFrameOut): boolean;
  readonly bufferedAmount: number;
  readonly limits: Record<string, number>;
}

/** The per-peer view a Channel uses. */
export interface FallbackLink {
  /** The server relays for us (relay not disabled). */
  readonly enabled: boolean;
  /** Largest fragment, in payload bytes, that fits a relay frame. */
  readonly fragmentBytes: number;
  /** Sends now if pacing allows; false: call again after `onDrain`. */
  trySend(channel: string, frame: RelayFrameOut): boolean;
  /** Sends now, or keeps it as the newest pending frame of this channel (replacing an older one). */
  sendLatest(channel: string, frame: RelayFrameOut): void;
  /** Called once there is room again; returns an unsubscribe function. */
  onDrain(cb: () => void): () => void;
}

/** Bytes of a relay frame besides its data: type, to/from, channel, seq, ack, flags. */
const FRAME_OVERHEAD = 320;
/** Stop writing above this much unsent data on the WebSocket. */
const SOCKET_HIGH_WATER = 256 * 1024;
/** How often a congested port looks again (browsers' WebSocket has no drain event). */
const DRAIN_POLL_MS = 10;
/** Stay this far below the server's rates, so clock differences never trip its limits. */
const PACING = 0.9;

/**
 * Like the server's TokenBucket (signaling/server/token-bucket.ts), but split into refill,
 * look and take: the port checks two buckets and the socket before taking from either, and
 * wakes waiters on a look. Reusing TokenBucket (take, then refund) measured 21-52 bytes
 * over the browser bundle's budget.
 */
class Bucket {
  #tokens: number;
  #last: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.#tokens = burst;
    this.#last = now;
  }
  refill(now: number): void {
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.rate);
    this.#last = now;
  }
  has(n: number): boolean {
    return this.#tokens >= n;
  }
  take(n: number): void {
    this.#tokens -= n;
  }
}

/** Approximate frame size for the byte bucket (base64 grows bytes by 4/3). */
export function relayFrameBytes(frame: RelayFrameOut): number {
  const d = frame.data;
  const n = d === undefined ? 0 : typeof d === 'string' ? d.length : Math.ceil(d.byteLength / 3) * 4;
  return n + 64;
}

export class FallbackPort {
  readonly #messages: Bucket;
  readonly #bytes: Bucket;
  readonly #waiters = new Set<() => void>();
  /** Latest-wins slots: `to\0channel` -> newest unsent unreliable frame. */
  readonly #slots = new Map<string, { to: string; channel: string; frame: RelayFrameOut }>();
  readonly #timer;
  #closed = false;
  readonly #transport: FallbackTransport;
  readonly #clock: Clock;
  readonly enabled: boolean;
  readonly fragmentBytes: number;

  constructor(transport: FallbackTransport, clock: Clock = systemClock) {
    this.#transport = transport;
    this.#clock = clock;
    this.#timer = timer(clock);
    const now = clock.now();
    const l = transport.limits;
    const rate = l.relayMessagesPerSecond ?? 0;
    this.enabled = rate > 0;
    this.#messages = new Bucket(rate * PACING, Math.max(1, (l.relayMessageBurst ?? 1) * PACING), now);
    const byteRate = l.relayBytesPerSecond ?? 1024 * 1024;
    this.#bytes = new Bucket(byteRate * PACING, Math.max(FRAME_OVERHEAD * 4, (l.relayBytesBurst ?? byteRate) * PACING), now);
    const maxMessage = l.maxMessageBytes ?? 16 * 1024;
    // A fragment travels base64-encoded with a kind byte: 3 payload bytes per 4 characters.
    this.fragmentBytes = Math.max(64, Math.floor(((maxMessage - FRAME_OVERHEAD) / 4) * 3) - 1);
  }

  link(to: string): FallbackLink {
    return {
      enabled: this.enabled,
      fragmentBytes: this.fragmentBytes,
      trySend: (channel, frame) => this.trySend(to, channel, frame),
      sendLatest: (channel, frame) => this.sendLatest(to, channel, frame),
      onDrain: (cb) => {
        this.#waiters.add(cb);
        this.#arm();
        return () => this.#waiters.delete(cb);
      },
    };
  }

  #room(size: number): boolean {
    if (!this.enabled || this.#closed) return false;
    const t = this.#clock.now();
    this.#messages.refill(t);
    this.#bytes.refill(t);
    return this.#messages.has(1) && this.#bytes.has(size) && this.#transport.bufferedAmount <= SOCKET_HIGH_WATER;
  }

  trySend(to: string, channel: string, frame: RelayFrameOut): boolean {
    const size = relayFrameBytes(frame);
    if (!this.#room(size)) {
      this.#arm();
      return false;
    }
    if (!this.#transport.relay(to, channel, frame)) return false;
    this.#messages.take(1);
    this.#bytes.take(size);
    return true;
  }

  sendLatest(to: string, channel: string, frame: RelayFrameOut): void {
    const key = `${to}\0${channel}`;
    if (!this.#slots.has(key) && this.trySend(to, channel, frame)) return;
    // Re-inserted, so slots drain oldest-first across channels.
    this.#slots.delete(key);
    this.#slots.set(key, { to, channel, frame });
    this.#arm();
  }

  #arm(): void {
    if (this.#closed || (this.#waiters.size === 0 && this.#slots.size === 0)) return;
    this.#timer.start(() => {
      this.#drain();
    }, DRAIN_POLL_MS);
  }

  #drain(): void {
    for (const [key, slot] of this.#slots) {
      if (!this.#room(relayFrameBytes(slot.frame))) break;
      this.#slots.delete(key);
      this.trySend(slot.to, slot.channel, slot.frame);
    }
    if (this.#room(FRAME_OVERHEAD)) {
      const waiters = [...this.#waiters];
      this.#waiters.clear();
      for (const cb of waiters) cb();
    }
    this.#arm();
  }

  close(): void {
    this.#closed = true;
    this.#timer.stop();
    this.#waiters.clear();
    this.#slots.clear();
  }
}
