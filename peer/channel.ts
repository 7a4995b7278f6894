import type { ResolvedChannel } from './channels.js';
import type { SendGate } from './runtime/types.js';
import { PeerError } from './errors.js';
import { LatestFilter, encodeLatest } from './latest.js';
import type { RelayFrameIn, RelayFrameOut, RelayLink } from './relay-link.js';
import { decodeFrame, encodeAck, encodeFragment, ReliableReceiver, ReliableSender, type Fragment } from './reliable.js';

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

/**
 * The least a receiver lets a message under reassembly grow to (256 KiB: Chromium's SCTP max
 * message size). The sender checked the message against ITS max message size, of its
 * current connection, which the receiver cannot see (its own rebuilt connection may have no
 * SCTP transport yet while the message comes over the WebSocket relay); so the cap is the
 * larger of this and the largest max message size this channel ever saw, that one counted
 * at most MAX_MESSAGE_BYTES. It bounds memory: an honest peer is never refused.
 */
export const MIN_REASSEMBLY_CAP = 262_144;

/**
 * The largest message this library sends or reassembles: 16 MiB, whatever max message size
 * a connection reports. That figure comes from the remote's SDP (`a=max-message-size`, RFC
 * 8841 section 6) and Firefox honours about 1 GiB, so without a ceiling a hostile peer could
 * make this side hold a 1 GiB message under reassembly (about 8 times that in fragments).
 * send() refuses bigger messages with `too-large`, so an honest peer never meets the ceiling;
 * send larger data in parts.
 */
export const MAX_MESSAGE_BYTES = 16_777_216;

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
  /** Which path sends go on: the data channel, or the WebSocket relay (fallback). */
  route(): Route;
  /** Something arrived on the data channel (the connection is alive). */
  heard(): void;
  /** The WebSocket relay to this peer. */
  relay(): RelayLink | null;
}

export type Route = 'rtc' | 'websocket';

/** A fragment waiting to be written on the current path; `done` settles its message's send(). */
interface Outgoing {
  frag: Fragment;
  done?: { resolve: () => void; reject: (e: Error) => void };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** How often waiting sends re-check `bufferedAmount` (see armPoll). */
const POLL_MS = 5;
/** The receiver acknowledges after this many fragments, or this long after the first unacknowledged one. */
const ACK_EVERY = 16;
const ACK_DELAY_MS = 20;
/**
 * On the WebSocket path, unacknowledged data is sent again when no acknowledgement came for
 * this long: the server drops relay frames for a congested recipient (end-to-end recovery).
 */
const RELAY_RTO_MS = 2_000;
/** Kind byte in front of base64 relay payloads. */
const KIND_BYTES = 0;
const KIND_TEXT = 1;

function toBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Base64 payload of a relay frame: a kind byte, then the bytes. */
function withKind(text: boolean, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength + 1);
  out[0] = text ? KIND_TEXT : KIND_BYTES;
  out.set(bytes, 1);
  return out;
}

/** What a relay frame's data carries: text (plain `data`) or [kind][bytes] (base64). */
function relayPayload(data: string | Uint8Array | undefined): { text: boolean; bytes: Uint8Array } | null {
  if (data === undefined) return null;
  if (typeof data === 'string') return { text: true, bytes: encoder.encode(data) };
  if (data.byteLength < 1 || (data[0] !== KIND_TEXT && data[0] !== KIND_BYTES)) return null;
  return { text: data[0] === KIND_TEXT, bytes: data.subarray(1) };
}

/**
 * A text payload goes on the relay as a plain JSON string when its escaped form surely fits
 * the frame (JSON escapes a character to at most 6), else as base64 of its UTF-8.
 */
function plainTextFits(text: string, budget: number): boolean {
  return text.length * 6 <= budget;
}

/**
 * One named channel to one remote peer: encoding (JSON, latest mode), size checks and
 * flow control, over an RTCDataChannel or, when the peer fell back, the WebSocket relay.
 *
 * Reliable channels number their fragments (peer/reliable.ts) and keep them until the
 * other side acknowledges them, on both paths, so a switch loses and duplicates nothing;
 * they queue with high/low watermarks on `bufferedAmount`. Unreliable ones drop when
 * congested, because a late game-state message is worth less than none; on the relay the
 * newest message per channel replaces an unsent older one.
 */
export class Channel {
  #dc: RTCDataChannel | null = null;
  /** Fragments not yet written on the current path, in sequence order. */
  #outbox: Outgoing[] = [];
  /** Payload bytes in the outbox (not yet written). */
  #outboxBytes = 0;
  readonly #sender = new ReliableSender();
  readonly #receiver: ReliableReceiver;
  #seq = 0;
  readonly #filter = new LatestFilter();
  #closed = false;
  #unsubscribeDrain: (() => void) | null = null;
  #unsubscribeRelayDrain: (() => void) | null = null;
  #pollTimer: ReturnType<typeof setInterval> | null = null;
  #ackTimer: ReturnType<typeof setTimeout> | null = null;
  #unackedReceived = 0;
  /** What a message under reassembly may grow to (see MIN_REASSEMBLY_CAP). */
  #reassemblyCap = MIN_REASSEMBLY_CAP;
  #rtoTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #flow: FlowLimits;
  readonly #hooks: ChannelHooks;
  sent = 0;
  received = 0;
  dropped = 0;

  constructor(
    readonly config: ResolvedChannel,
    flow: FlowLimits,
    hooks: ChannelHooks,
  ) {
    this.#flow = flow;
    this.#hooks = hooks;
    this.#receiver = new ReliableReceiver(flow.maxQueuedBytes);
  }

  /** Whether the runtime below the data channel is saturated (see RtcRuntime.sendGate). */
  #gated(): boolean {
    const gate = this.#hooks.gate();
    if (!gate) return false;
    if (!gate.blocked()) return false;
    this.#unsubscribeDrain ??= gate.onDrain(() => this.#flush());
    return true;
  }

  get open(): boolean {
    return this.#dc?.readyState === 'open';
  }

  /** Stale messages the latest-mode filter dropped on receive. */
  get staleDropped(): number {
    return this.#filter.dropped;
  }

  /** Messages known lost on receive (latest-mode sequence gaps). */
  get lost(): number {
    return this.#filter.lost;
  }

  /** Sends from now on over `dc` (a new connection replaces the old channel's dc). */
  attach(dc: RTCDataChannel): void {
    if (this.#closed) {
      dc.close();
      return;
    }
    if (this.#dc && this.#dc !== dc) this.#detach(this.#dc);
    this.#unsubscribeDrain?.();
    this.#unsubscribeDrain = null;
    this.#dc = dc;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = this.#flow.lowWaterMark;
    dc.onmessage = (ev: MessageEvent) => this.#receive(ev.data as unknown);
    dc.onbufferedamountlow = () => this.#flush();
    const opened = (): void => {
      // A new data channel: what the old one may have lost in flight goes again (the
      // receiver drops what it already has).
      if (this.#hooks.route() === 'rtc') this.resend();
      this.#maxMessageSize();
      this.#hooks.open();
    };
    dc.onopen = opened;
    dc.onclose = () => {
      if (this.#dc === dc && !this.#closed) this.#hooks.lost();
    };
    if (dc.readyState === 'open') opened();
  }

  /**
   * The peer switched paths: every unacknowledged fragment goes again on the new one, in
   * order, ahead of what is still waiting.
   */
  resend(): void {
    if (this.#closed || !this.config.reliable) return;
    const done = new Map<number, Outgoing['done']>();
    for (const o of this.#outbox) if (o.done) done.set(o.frag.seq, o.done);
    this.#outboxBytes = this.#sender.bytes;
    this.#outbox = this.#sender.pending.map((frag) => {
      const d = done.get(frag.seq);
      return d ? { frag, done: d } : { frag };
    });
    this.#flush();
  }

  /** Sends; resolves once handed to the path (or dropped, on unreliable channels). */
  send(data: SendData): Promise<void> {
    if (this.#closed) return Promise.reject(new PeerError('closed', `channel ${this.config.name} is closed`));
    let payload: string | Uint8Array;
    try {
      payload = this.#encode(data);
    } catch (err) {
      return Promise.reject(err instanceof PeerError ? err : new PeerError('bad-data', `cannot encode for ${this.config.name}: ${(err as Error).message}`, { cause: err }));
    }
    // Encoded once: for the size check and, on reliable channels, the fragments.
    const bytes = typeof payload === 'string' ? encoder.encode(payload) : payload;
    const size = bytes.byteLength;
    const max = this.#maxMessageSize();
    if (size > max) return Promise.reject(new PeerError('too-large', `message of ${size} bytes exceeds the negotiated max ${max} on ${this.config.name}`));
    if (!this.config.reliable) {
      this.#sendUnreliable(payload);
      return Promise.resolve();
    }
    if (this.#outboxBytes + size > this.#flow.maxQueuedBytes) {
      return Promise.reject(new PeerError('buffer-full', `${this.#outboxBytes} bytes already wait on ${this.config.name} (max ${this.#flow.maxQueuedBytes}); await earlier sends`));
    }
    const frags = this.#sender.push(payload, this.#fragmentBytes(), bytes);
    this.#outboxBytes += size;
    return new Promise<void>((resolve, reject) => {
      frags.forEach((frag, i) => this.#outbox.push(i === frags.length - 1 ? { frag, done: { resolve, reject } } : { frag }));
      this.#flush();
    });
  }

  /**
   * Fragment size: what a relay frame carries, so that fragments numbered on one path can
   * be sent again on the other; the data channel's own limit when there is no relay.
   */
  #fragmentBytes(): number {
    const relay = this.#hooks.relay();
    return relay?.enabled ? relay.fragmentBytes : this.#hooks.maxMessageSize();
  }

  #sendUnreliable(payload: string | Uint8Array): void {
    if (this.#hooks.route() === 'websocket') {
      const relay = this.#hooks.relay();
      const frame = relay ? this.#unreliableFrame(payload, relay.fragmentBytes) : null;
      if (relay && frame) relay.sendLatest(this.config.name, frame);
      else this.dropped++;
      return;
    }
    const dc = this.#dc;
    const wire = this.config.latest ? encodeLatest(this.#seq++, payload) : payload;
    if (dc && dc.readyState === 'open' && dc.bufferedAmount <= this.#flow.dropAbove && !this.#gated()) this.#write(dc, wire);
    else this.dropped++;
  }

  /** A relay frame for an unreliable message; null if too big for one. */
  #unreliableFrame(payload: string | Uint8Array, fragmentBytes: number): RelayFrameOut | null {
    const frame: RelayFrameOut = { unreliable: true };
    if (this.config.latest) frame.seq = this.#seq++ >>> 0;
    if (typeof payload === 'string' && plainTextFits(payload, fragmentBytes)) frame.data = payload;
    else {
      const bytes = typeof payload === 'string' ? encoder.encode(payload) : payload;
      if (bytes.byteLength > fragmentBytes) return null;
      frame.data = withKind(typeof payload === 'string', bytes);
    }
    return frame;
  }

  /**
   * While sends wait, look at `bufferedAmount` every few ms as well as on
   * `bufferedamountlow`: @roamhq/wrtc 0.10 never fires that event (nor has a threshold), and
   * without the poll a reliable transfer that filled its buffer would wait forever.
   */
  #armPoll(): void {
    if (this.#pollTimer !== null) return;
    this.#pollTimer = setInterval(() => {
      this.#flush();
      // A closed data channel stays closed: the next attach() (its `open`) flushes again.
      if (this.#outbox.length === 0 || this.#hooks.route() !== 'rtc' || !this.open) this.#disarmPoll();
    }, POLL_MS);
  }

  #disarmPoll(): void {
    if (this.#pollTimer !== null) clearInterval(this.#pollTimer);
    this.#pollTimer = null;
  }

  /**
   * Written but not yet acknowledged data is bounded too (4 x the high watermark): the
   * sender keeps it for resending, and a runtime that does not report `bufferedAmount`
   * (@roamhq/wrtc) would otherwise take everything at once.
   */
  #windowFull(): boolean {
    return this.#sender.bytes - this.#outboxBytes > this.#flow.highWaterMark * 4;
  }

  /** Writes waiting fragments while the current path has room. */
  #flush(): void {
    if (this.#closed) return;
    if (this.#hooks.route() === 'websocket') return this.#flushRelay();
    const dc = this.#dc;
    if (!dc || dc.readyState !== 'open') return;
    while (this.#outbox.length) {
      const next = this.#outbox[0] as Outgoing;
      const size = next.frag.bytes.byteLength + 5;
      if (dc.bufferedAmount + size > this.#flow.highWaterMark && dc.bufferedAmount > 0) return this.#armPoll();
      if (this.#gated() || this.#windowFull()) return;
      this.#outbox.shift();
      this.#outboxBytes -= next.frag.bytes.byteLength;
      try {
        this.#write(dc, encodeFragment(next.frag));
        next.done?.resolve();
      } catch (err) {
        next.done?.reject(new PeerError('closed', `send failed on ${this.config.name}: ${(err as Error).message}`, { cause: err }));
      }
    }
  }

  #flushRelay(): void {
    const relay = this.#hooks.relay();
    if (!relay) return;
    while (this.#outbox.length && !this.#windowFull()) {
      const next = this.#outbox[0] as Outgoing;
      const f = next.frag;
      const frame: RelayFrameOut = { seq: f.seq };
      if (f.more) frame.more = true;
      // A whole text message goes as a plain string; fragments and bytes as [kind][bytes].
      frame.data = f.str !== undefined && plainTextFits(f.str, relay.fragmentBytes) ? f.str : withKind(f.text, f.bytes);
      if (!relay.trySend(this.config.name, frame)) {
        this.#unsubscribeRelayDrain ??= relay.onDrain(() => {
          this.#unsubscribeRelayDrain = null;
          this.#flush();
        });
        return;
      }
      this.#outbox.shift();
      this.#outboxBytes -= f.bytes.byteLength;
      this.sent++;
      next.done?.resolve();
      this.#armRto();
    }
  }

  #armRto(): void {
    if (this.#rtoTimer !== null) return;
    this.#rtoTimer = setTimeout(() => {
      this.#rtoTimer = null;
      if (this.#closed || this.#sender.pendingCount === 0 || this.#hooks.route() !== 'websocket') return;
      this.resend();
    }, RELAY_RTO_MS);
  }

  #onAck(seq: number): void {
    if (this.#sender.ack(seq) === 0) return;
    if (this.#rtoTimer !== null) {
      clearTimeout(this.#rtoTimer);
      this.#rtoTimer = null;
      if (this.#sender.pendingCount > 0 && this.#hooks.route() === 'websocket') this.#armRto();
    }
    // The window moved.
    this.#flush();
  }

  #write(dc: RTCDataChannel, payload: string | Uint8Array): void {
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
    this.#hooks.heard();
    let data: string | Uint8Array;
    if (typeof raw === 'string') data = raw;
    else if (raw instanceof ArrayBuffer || ArrayBuffer.isView(raw)) data = toBytes(raw);
    else return this.#hooks.error(new PeerError('bad-data', `unexpected message type on ${this.config.name}`));
    const { reliable, latest } = this.config;
    if (reliable || latest) {
      // Both are framed [flags][seq][payload] (peer/reliable.ts); latest-mode messages are
      // never fragments or acks.
      const frame = typeof data === 'string' ? null : decodeFrame(data);
      if (!frame || (latest && ('ack' in frame || frame.fragment.more))) return this.#hooks.error(new PeerError('bad-data', `malformed frame on ${this.config.name}`));
      if ('ack' in frame) return this.#onAck(frame.ack);
      const f = frame.fragment;
      if (reliable) return this.#onFragment(f);
      if (!this.#filter.accept(f.seq)) return;
      data = f.text ? decoder.decode(f.bytes) : f.bytes;
    }
    this.#deliver(data);
  }

  /** A relay frame from this peer (it may be on the WebSocket while we are not). */
  receiveRelay(frame: RelayFrameIn): void {
    if (this.#closed) return;
    if (this.config.reliable) {
      if (frame.ack !== undefined) this.#onAck(frame.ack);
      if (frame.data === undefined) return;
      const body = relayPayload(frame.data);
      if (!body || frame.seq === undefined) return this.#hooks.error(new PeerError('bad-data', `malformed relay frame on ${this.config.name}`));
      return this.#onFragment({ seq: frame.seq, text: body.text, more: frame.more === true, bytes: body.bytes });
    }
    const body = relayPayload(frame.data);
    // A latest-mode frame needs its number.
    if (!body || (this.config.latest && frame.seq === undefined)) return this.#hooks.error(new PeerError('bad-data', `malformed relay frame on ${this.config.name}`));
    if (this.config.latest && !this.#filter.accept(frame.seq as number)) return;
    this.#deliver(body.text ? decoder.decode(body.bytes) : body.bytes);
  }

  /** The current max message size, at most MAX_MESSAGE_BYTES; remembers the largest for the reassembly cap. */
  #maxMessageSize(): number {
    const max = Math.min(this.#hooks.maxMessageSize(), MAX_MESSAGE_BYTES);
    if (max > this.#reassemblyCap) this.#reassemblyCap = max;
    return max;
  }

  #onFragment(f: Fragment): void {
    let done;
    try {
      this.#maxMessageSize();
      done = this.#receiver.receive(f, this.#reassemblyCap);
    } catch (err) {
      // A PeerError `protocol-violation` (peer/reliable.ts): what the remote peer sends on
      // this channel can no longer be trusted, and holding more of it is what it may be after.
      this.close();
      return this.#hooks.error(err as PeerError);
    }
    for (const m of done) this.#deliver(m.text ? decoder.decode(m.bytes) : m.bytes);
    this.#unackedReceived++;
    if (this.#unackedReceived >= ACK_EVERY) this.#sendAck();
    else this.#ackTimer ??= setTimeout(() => this.#sendAck(), ACK_DELAY_MS);
  }

  /**
   * Liveness traffic on the data channel. A keepalive is an acknowledgement frame, which the
   * other side takes in without answering. A `probe` asks for an answer even from a side
   * that has nothing to send: a copy of a fragment the other side already has (empty,
   * numbered with the last sequence number it acknowledged), which its receiver drops as a
   * duplicate and answers with an acknowledgement, as a TCP keepalive is answered (RFC 1122
   * section 4.2.3.6); peers of earlier versions answer it the same way, and an answer is
   * never answered. False if this is not a reliable channel with an open data channel.
   */
  ping(probe: boolean): boolean {
    const dc = this.#dc;
    if (!this.config.reliable || dc?.readyState !== 'open') return false;
    try {
      const frame = encodeAck(probe ? this.#sender.acked : this.#receiver.ack);
      if (probe) frame[0] = 0; // an empty fragment: no TEXT, MORE or ACK flag
      dc.send(frame as Uint8Array<ArrayBuffer>);
      return true;
    } catch {
      return false;
    }
  }

  /** Acknowledges what arrived in order, on our current path. */
  #sendAck(): void {
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    if (this.#closed) return;
    const ack = this.#receiver.ack;
    let sent = false;
    if (this.#hooks.route() === 'websocket') sent = this.#hooks.relay()?.trySend(this.config.name, { ack }) ?? false;
    else if (this.#dc?.readyState === 'open') {
      try {
        this.#dc.send(encodeAck(ack) as Uint8Array<ArrayBuffer>);
        sent = true;
      } catch {
        // closing; the next path acknowledges
      }
    }
    if (sent) this.#unackedReceived = 0;
    else this.#ackTimer = setTimeout(() => this.#sendAck(), ACK_DELAY_MS * 5);
  }

  #deliver(data: string | Uint8Array): void {
    this.received++;
    if (!this.config.json) return this.#hooks.message(data);
    try {
      this.#hooks.message(JSON.parse(typeof data === 'string' ? data : decoder.decode(data)) as unknown);
    } catch (err) {
      this.#hooks.error(new PeerError('bad-data', `invalid JSON on ${this.config.name}`, { cause: err }));
    }
  }

  /** Rejects waiting sends and detaches from the data channel. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const o of this.#outbox.splice(0)) o.done?.reject(new PeerError('closed', `channel ${this.config.name} closed before the message was sent`));
    this.#disarmPoll();
    for (const t of [this.#ackTimer, this.#rtoTimer]) if (t !== null) clearTimeout(t);
    this.#ackTimer = null;
    this.#rtoTimer = null;
    this.#unsubscribeDrain?.();
    this.#unsubscribeDrain = null;
    this.#unsubscribeRelayDrain?.();
    this.#unsubscribeRelayDrain = null;
    const dc = this.#dc;
    this.#dc = null;
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
