import type { ResolvedChannel } from './channels.js';
import type { SendGate } from './runtime/types.js';
import { PeerError } from './errors.js';
import { LatestFilter, decodeLatest, encodeLatest } from './latest.js';

/** What `send` accepts; JSON channels accept any JSON-serializable value. */
export type SendData = string | ArrayBuffer | ArrayBufferView | unknown;
/** What `message` events carry: a string, bytes, or (JSON channels) the parsed value. */
export type MessageData = string | Uint8Array | unknown;

export interface FlowLimits {
  /** Reliable: a send waits while more than this many bytes are buffered. Default 1 MiB. */
  highWaterMark: number;
  /** Reliable: waiting sends resume when buffered bytes fall to this. Default 256 KiB. */
  lowWaterMark: number;
  /** Reliable: bytes that may wait in our queue; beyond it a send rejects with `buffer-full`. Default 8 MiB. */
  maxQueuedBytes: number;
  /** Unreliable: drop new messages while more than this is buffered. Default 16 KiB. */
  dropAbove: number;
}

export const DEFAULT_FLOW: FlowLimits = {
  highWaterMark: 1024 * 1024,
  lowWaterMark: 256 * 1024,
  maxQueuedBytes: 8 * 1024 * 1024,
  // Stale state is worthless: about a second of 60 Hz x 200 B state, then drop.
  dropAbove: 16 * 1024,
};

/** Default SCTP max message size when the remote does not say (RFC 8841 §6: 64 KiB). */
export const DEFAULT_MAX_MESSAGE_SIZE = 65_536;

/** What a Channel asks of, and tells, the peer that owns it. */
export interface ChannelHooks {
  /** The negotiated SCTP max message size of the current connection. */
  maxMessageSize(): number;
  /** The runtime's send gate for the current connection, if any (see RtcRuntime.sendGate). */
  gate(): SendGate | null;
  message(data: MessageData): void;
  error(err: PeerError): void;
  /** The data channel opened. */
  open(): void;
  /** The data channel closed without us closing it (the remote closed it, or the transport died). */
  lost(): void;
}

interface Waiting {
  payload: string | Uint8Array;
  size: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

const encoder = new TextEncoder();
/** How often waiting sends re-check `bufferedAmount` (see armPoll). */
const POLL_MS = 5;

function toBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * One named channel to one remote peer: encoding (JSON, latest mode), size checks and
 * flow control over an RTCDataChannel. Reliable channels queue with high/low watermarks
 * on `bufferedAmount`; unreliable ones drop when congested, because a late game-state
 * message is worth less than none.
 */
export class Channel {
  private dc: RTCDataChannel | null = null;
  private readonly queue: Waiting[] = [];
  private queuedBytes = 0;
  private seq = 0;
  private readonly filter = new LatestFilter();
  private closed = false;
  sent = 0;
  received = 0;
  dropped = 0;

  constructor(
    readonly config: ResolvedChannel,
    private readonly flow: FlowLimits,
    private readonly hooks: ChannelHooks,
  ) {}

  private unsubscribeDrain: (() => void) | null = null;
  private pollTimer: ReturnType<typeof setInterval> | null = null;

  /** Whether the runtime below the data channel is saturated (see RtcRuntime.sendGate). */
  private gated(): boolean {
    const gate = this.hooks.gate();
    if (!gate) return false;
    if (!gate.blocked()) return false;
    this.unsubscribeDrain ??= gate.onDrain(() => this.flush());
    return true;
  }

  get open(): boolean {
    return this.dc?.readyState === 'open';
  }

  /** Stale messages the latest-mode filter dropped on receive. */
  get staleDropped(): number {
    return this.filter.dropped;
  }

  /** Messages known lost on receive (latest-mode sequence gaps). */
  get lost(): number {
    return this.filter.lost;
  }

  /** Sends from now on over `dc` (a new connection replaces the old channel's dc). */
  attach(dc: RTCDataChannel): void {
    if (this.closed) {
      dc.close();
      return;
    }
    if (this.dc && this.dc !== dc) this.detach(this.dc);
    this.unsubscribeDrain?.();
    this.unsubscribeDrain = null;
    this.dc = dc;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = this.flow.lowWaterMark;
    dc.onmessage = (ev: MessageEvent) => this.receive(ev.data as unknown);
    dc.onbufferedamountlow = () => this.flush();
    dc.onopen = () => {
      this.flush();
      this.hooks.open();
    };
    dc.onclose = () => {
      if (this.dc === dc && !this.closed) this.hooks.lost();
    };
    if (dc.readyState === 'open') {
      this.flush();
      this.hooks.open();
    }
  }

  /** Sends; resolves once handed to the data channel (or dropped, on unreliable channels). */
  send(data: SendData): Promise<void> {
    if (this.closed) return Promise.reject(new PeerError('closed', `channel ${this.config.name} is closed`));
    let payload: string | Uint8Array;
    try {
      payload = this.encode(data);
    } catch (err) {
      return Promise.reject(err instanceof PeerError ? err : new PeerError('bad-data', `cannot encode for ${this.config.name}: ${(err as Error).message}`, { cause: err }));
    }
    const size = typeof payload === 'string' ? encoder.encode(payload).byteLength : payload.byteLength;
    const max = this.hooks.maxMessageSize();
    if (size > max) return Promise.reject(new PeerError('too-large', `message of ${size} bytes exceeds the negotiated max message size ${max} on ${this.config.name}`));
    const dc = this.dc;
    if (!this.config.reliable) {
      if (dc && dc.readyState === 'open' && dc.bufferedAmount <= this.flow.dropAbove && !this.gated()) this.write(dc, payload);
      else this.dropped++;
      return Promise.resolve();
    }
    if (dc && dc.readyState === 'open' && this.queue.length === 0 && dc.bufferedAmount + size <= this.flow.highWaterMark && !this.gated()) {
      this.write(dc, payload);
      return Promise.resolve();
    }
    if (this.queuedBytes + size > this.flow.maxQueuedBytes) {
      return Promise.reject(new PeerError('buffer-full', `${this.queuedBytes} bytes already wait on ${this.config.name} (max ${this.flow.maxQueuedBytes}); await earlier sends`));
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ payload, size, resolve, reject });
      this.queuedBytes += size;
      this.armPoll();
    });
  }

  /**
   * While sends wait, look at `bufferedAmount` every few ms as well as on
   * `bufferedamountlow`: @roamhq/wrtc 0.10 never fires that event (nor has a threshold), and
   * without the poll a reliable transfer that filled its buffer would wait forever.
   */
  private armPoll(): void {
    if (this.pollTimer !== null) return;
    this.pollTimer = setInterval(() => {
      this.flush();
      if (this.queue.length === 0) this.disarmPoll();
    }, POLL_MS);
  }

  private disarmPoll(): void {
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  /** Sends waiting messages while the channel is below the high watermark. */
  private flush(): void {
    const dc = this.dc;
    if (!dc || dc.readyState !== 'open') return;
    while (this.queue.length) {
      const next = this.queue[0] as Waiting;
      if (dc.bufferedAmount + next.size > this.flow.highWaterMark && dc.bufferedAmount > 0) return;
      if (this.gated()) return;
      this.queue.shift();
      this.queuedBytes -= next.size;
      try {
        this.write(dc, next.payload);
        next.resolve();
      } catch (err) {
        next.reject(new PeerError('closed', `send failed on ${this.config.name}: ${(err as Error).message}`, { cause: err }));
      }
    }
  }

  private write(dc: RTCDataChannel, payload: string | Uint8Array): void {
    if (typeof payload === 'string') dc.send(payload);
    else dc.send(payload as Uint8Array<ArrayBuffer>);
    this.sent++;
  }

  private encode(data: SendData): string | Uint8Array {
    let body: string | Uint8Array;
    if (this.config.json) {
      const text = JSON.stringify(data);
      if (text === undefined) throw new PeerError('bad-data', `cannot send ${typeof data} as JSON on ${this.config.name}`);
      body = text;
    } else if (typeof data === 'string') body = data;
    else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) body = toBytes(data);
    else throw new PeerError('bad-data', `channel ${this.config.name} sends strings or bytes; set json: true to send values`);
    return this.config.latest ? encodeLatest(this.seq++, body) : body;
  }

  private receive(raw: unknown): void {
    let data: string | Uint8Array;
    if (typeof raw === 'string') data = raw;
    else if (raw instanceof ArrayBuffer || ArrayBuffer.isView(raw)) data = toBytes(raw);
    else return this.hooks.error(new PeerError('bad-data', `unexpected message type on ${this.config.name}`));
    if (this.config.latest) {
      const frame = typeof data === 'string' ? null : decodeLatest(data);
      if (!frame) return this.hooks.error(new PeerError('bad-data', `malformed latest-mode frame on ${this.config.name}`));
      if (!this.filter.accept(frame.seq)) return;
      data = frame.payload;
    }
    this.received++;
    if (!this.config.json) return this.hooks.message(data);
    try {
      this.hooks.message(JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data)) as unknown);
    } catch (err) {
      this.hooks.error(new PeerError('bad-data', `invalid JSON on ${this.config.name}`, { cause: err }));
    }
  }

  /** Rejects waiting sends and detaches from the data channel. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.queue.splice(0)) w.reject(new PeerError('closed', `channel ${this.config.name} closed before the message was sent`));
    this.queuedBytes = 0;
    this.disarmPoll();
    this.unsubscribeDrain?.();
    this.unsubscribeDrain = null;
    const dc = this.dc;
    this.dc = null;
    if (dc) this.detach(dc);
  }

  private detach(dc: RTCDataChannel): void {
    dc.onmessage = null;
    dc.onbufferedamountlow = null;
    dc.onopen = null;
    dc.onclose = null;
    try {
      dc.close();
    } catch {
      // Already closed with its peer connection.
    }
  }
}
