import { decoder, encoder, toBytes } from './bytes.js';
import type { ResolvedChannel } from './channels.js';
import type { Clock } from './clock.js';
import { PeerError } from './errors.js';
import type { FallbackLink, RelayFrameIn } from './fallback-link.js';
import { type FlowLimits, MAX_MESSAGE_BYTES, MIN_REASSEMBLY_CAP } from './flow.js';
import type { SendGate } from './runtime/types.js';

export { DEFAULT_FLOW, DEFAULT_MAX_MESSAGE_SIZE, type FlowLimits, MAX_MESSAGE_BYTES, MIN_REASSEMBLY_CAP } from './flow.js';

/**
 * What `send` accepts: a string or bytes; on `json: true` channels also a number, boolean,
 * null or object (arrays, class instances and objects with `toJSON` included: whatever
 * `JSON.stringify` turns into text; a function rejects with `bad-data`). `undefined`, symbols
 * and bigints are refused by the type.
 */
export type SendData = string | ArrayBuffer | ArrayBufferView | number | boolean | null | object;
/**
 * What `message` events carry: a string or a Uint8Array; on `json: true` channels the value
 * `JSON.parse` gave (a string, number, boolean, null, array or plain object; `object` so that
 * an app can cast it to its own interface).
 */
export type MessageData = string | Uint8Array | number | boolean | null | object;

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
  /** Which path sends go on: the data channel, or the WebSocket fallback (fallback). */
  route(): Route;
  /** Something arrived on the data channel (the connection is alive). */
  heard(): void;
  /** The WebSocket fallback to this peer. */
  fallback(): FallbackLink | null;
}

export type Route = 'rtc' | 'websocket';

/**
 * One named channel to one remote peer, over an RTCDataChannel or, when the peer fell back,
 * the WebSocket fallback: the binding to the data channel (which a rebuilt connection
 * replaces), encoding (JSON), size checks and delivery. How messages travel is the
 * subclass's: peer/reliable-stream.ts (numbered, acknowledged and sent again: lossless
 * across path switches) or peer/unreliable-stream.ts (dropped when congested, `latest`
 * numbering). peer/channels.ts `createChannel` picks one.
 */
export abstract class Channel {
  /** The current data channel; a new connection replaces it. */
  protected dc: RTCDataChannel | null = null;
  protected closed = false;
  #unsubscribeDrain: (() => void) | null = null;
  /** What a message under reassembly may grow to (see MIN_REASSEMBLY_CAP). */
  protected reassemblyCap = MIN_REASSEMBLY_CAP;
  /** Messages written (fragments, on reliable channels), and unreliable ones dropped by the sender. */
  sent = 0;
  dropped = 0;

  constructor(
    readonly config: ResolvedChannel,
    protected readonly flow: FlowLimits,
    protected readonly hooks: ChannelHooks,
    protected readonly clock: Clock,
  ) {}

  get open(): boolean {
    return this.dc?.readyState === 'open';
  }

  /** Messages known lost on receive (latest-mode sequence gaps). */
  get lost(): number {
    return 0;
  }

  /** Hands an encoded message to the path; see `send`. */
  protected abstract push(payload: string | Uint8Array, bytes: Uint8Array): Promise<void>;
  /** A data channel message, as a string or bytes. */
  protected abstract take(data: string | Uint8Array): void;
  /** A relay frame from this peer (it may be on the WebSocket while we are not). */
  abstract receiveRelay(frame: RelayFrameIn): void;

  /** Writes what waits, if anything (the path has room again). */
  protected flush(): void {}

  /** The peer switched paths (reliable channels send again what was not acknowledged). */
  resend(): void {}

  /** Liveness traffic (reliable channels only); false if nothing went out. */
  ping(_probe: boolean): boolean {
    return false;
  }

  /** Whether the runtime below the data channel is saturated (see RtcRuntime.sendGate). */
  protected gated(): boolean {
    const gate = this.hooks.gate();
    if (!gate) return false;
    if (!gate.blocked()) return false;
    this.#unsubscribeDrain ??= gate.onDrain(() => this.flush());
    return true;
  }

  /** Sends from now on over `dc` (a new connection replaces the old channel's dc). */
  attach(dc: RTCDataChannel): void {
    if (this.closed) {
      dc.close();
      return;
    }
    if (this.dc && this.dc !== dc) this.#detach(this.dc);
    this.#unsubscribeDrain?.();
    this.#unsubscribeDrain = null;
    this.dc = dc;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = this.flow.lowWaterMark;
    dc.onmessage = (ev: MessageEvent) => this.#receive(ev.data as unknown);
    dc.onbufferedamountlow = () => this.flush();
    const opened = (): void => {
      // A new data channel: what the old one may have lost in flight goes again (the
      // receiver drops what it already has).
      if (this.hooks.route() === 'rtc') this.resend();
      this.maxSize();
      this.hooks.open();
    };
    dc.onopen = opened;
    dc.onclose = () => {
      if (this.dc === dc && !this.closed) this.hooks.lost();
    };
    if (dc.readyState === 'open') opened();
  }

  /** Sends; resolves once handed to the path (or dropped, on unreliable channels). */
  send(data: SendData): Promise<void> {
    if (this.closed) return Promise.reject(new PeerError('closed', `channel ${this.config.name} is closed`));
    let payload: string | Uint8Array;
    try {
      payload = this.#encode(data);
    } catch (err) {
      return Promise.reject(err instanceof PeerError ? err : new PeerError('bad-data', `cannot encode for ${this.config.name}: ${(err as Error).message}`, { cause: err }));
    }
    // Encoded once: for the size check and, on reliable channels, the fragments.
    const bytes = typeof payload === 'string' ? encoder.encode(payload) : payload;
    const size = bytes.byteLength;
    const max = this.maxSize();
    if (size > max) return Promise.reject(new PeerError('too-large', `message of ${size} bytes exceeds the negotiated max ${max} on ${this.config.name}`));
    return this.push(payload, bytes);
  }

  protected write(dc: RTCDataChannel, payload: string | Uint8Array): void {
    if (typeof payload === 'string') dc.send(payload);
    else dc.send(payload as Uint8Array<ArrayBuffer>);
    this.sent++;
  }

  #encode(data: SendData): string | Uint8Array {
    if (this.config.json) {
      const text = JSON.stringify(data);
      if (text === undefined) throw new PeerError('bad-data', `cannot send ${typeof data} as JSON on ${this.config.name}`);
      return text;
    }
    if (typeof data === 'string') return data;
    if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return toBytes(data);
    throw new PeerError('bad-data', `channel ${this.config.name} sends strings or bytes; set json: true to send values`);
  }

  /** A data channel message. */
  #receive(raw: unknown): void {
    this.hooks.heard();
    if (typeof raw === 'string') this.take(raw);
    else if (raw instanceof ArrayBuffer || ArrayBuffer.isView(raw)) this.take(toBytes(raw));
    else this.hooks.error(new PeerError('bad-data', `unexpected message type on ${this.config.name}`));
  }

  /** Reports a frame that no sender of this library writes (`what`: "frame", "relay frame"). */
  protected malformed(what: string): void {
    this.hooks.error(new PeerError('bad-data', `malformed ${what} on ${this.config.name}`));
  }

  /** The current max message size, at most MAX_MESSAGE_BYTES; remembers the largest for the reassembly cap. */
  protected maxSize(): number {
    const max = Math.min(this.hooks.maxMessageSize(), MAX_MESSAGE_BYTES);
    if (max > this.reassemblyCap) this.reassemblyCap = max;
    return max;
  }

  /** Hands a message to the app: as it came (`text`: UTF-8 bytes, as a string), or parsed on JSON channels. */
  protected deliver(data: string | Uint8Array, text = false): void {
    if (text) data = decoder.decode(data as Uint8Array);
    if (!this.config.json) return this.hooks.message(data);
    try {
      this.hooks.message(JSON.parse(typeof data === 'string' ? data : decoder.decode(data)) as MessageData);
    } catch (err) {
      this.hooks.error(new PeerError('bad-data', `invalid JSON on ${this.config.name}`, { cause: err }));
    }
  }

  /** Detaches from the data channel and stops its timers. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#unsubscribeDrain?.();
    this.#unsubscribeDrain = null;
    const dc = this.dc;
    this.dc = null;
    if (dc) this.#detach(dc);
  }

  #detach(dc: RTCDataChannel): void {
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
