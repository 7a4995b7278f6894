/**
 * The reliable stream of a `reliable` channel: its outbox, flow control, acknowledgements,
 * the resend after a path switch and the resend timer on the WebSocket fallback, and the
 * liveness keepalives and probes that ride on it.
 *
 * Fragments are numbered (peer/sequencing.ts) and kept until the other side acknowledges
 * them, on both paths, so a switch loses and duplicates nothing; sends queue with high/low
 * watermarks on `bufferedAmount`.
 */
import { Channel } from './channel.js';
import { timer } from './clock.js';
import { PeerError } from './errors.js';
import type { RelayFrameIn, RelayFrameOut } from './fallback-link.js';
import { decodeFrame, encodeAck, encodeFragment, fallbackPayload, plainTextFits, withKind } from './framing.js';
import { type Delivered, type Fragment, ReliableReceiver, ReliableSender } from './sequencing.js';

/** A fragment waiting to be written on the current path; `done` settles its message's send(). */
interface Outgoing {
  frag: Fragment;
  done?: { resolve: () => void; reject: (e: Error) => void };
}

/** How often waiting sends re-check `bufferedAmount` (see armPoll). */
const POLL_MS = 5;
/** The receiver acknowledges after this many fragments, or this long after the first unacknowledged one. */
const ACK_EVERY = 16;
const ACK_DELAY_MS = 20;
/**
 * On the WebSocket path, unacknowledged data is sent again when no acknowledgement came for
 * this long: the server drops relay frames for a congested recipient (end-to-end recovery).
 */
const FALLBACK_RTO_MS = 2_000;

export class ReliableChannel extends Channel {
  /** Fragments not yet written on the current path, in sequence order. */
  #outbox: Outgoing[] = [];
  /** Payload bytes in the outbox (not yet written). */
  #outboxBytes = 0;
  readonly #sender = new ReliableSender();
  readonly #receiver = new ReliableReceiver(this.flow.maxQueuedBytes);
  #unsubscribeFallbackDrain: (() => void) | null = null;
  readonly #poll = timer(this.clock);
  readonly #ackTimer = timer(this.clock);
  /** Made once: arming the ack timer happens per fragment received, and must not allocate. */
  readonly #ackDue = (): void => this.#sendAck();
  #unackedReceived = 0;
  /** The resend timer of the WebSocket path (FALLBACK_RTO_MS). */
  readonly #resendTimer = timer(this.clock);

  /**
   * The peer switched paths: every unacknowledged fragment goes again on the new one, in
   * order, ahead of what is still waiting.
   */
  override resend(): void {
    if (this.closed) return;
    const done = new Map<number, Outgoing['done']>();
    for (const o of this.#outbox) if (o.done) done.set(o.frag.seq, o.done);
    this.#outboxBytes = this.#sender.bytes;
    this.#outbox = this.#sender.pending.map((frag) => {
      const d = done.get(frag.seq);
      return d ? { frag, done: d } : { frag };
    });
    this.flush();
  }

  protected push(payload: string | Uint8Array, bytes: Uint8Array): Promise<void> {
    const size = bytes.byteLength;
    if (this.#outboxBytes + size > this.flow.maxQueuedBytes) {
      return Promise.reject(new PeerError('buffer-full', `${this.#outboxBytes} bytes already wait on ${this.config.name} (max ${this.flow.maxQueuedBytes}); await earlier sends`));
    }
    const frags = this.#sender.push(payload, this.#fragmentBytes(), bytes);
    this.#outboxBytes += size;
    return new Promise<void>((resolve, reject) => {
      const last = frags.length - 1;
      for (let i = 0; i < last; i++) this.#outbox.push({ frag: frags[i] as Fragment });
      this.#outbox.push({ frag: frags[last] as Fragment, done: { resolve, reject } });
      this.flush();
    });
  }

  /**
   * Fragment size: what a relay frame carries, so that fragments numbered on one path can
   * be sent again on the other; the data channel's own limit when there is no fallback.
   */
  #fragmentBytes(): number {
    const link = this.hooks.fallback();
    return link?.enabled ? link.fragmentBytes : this.hooks.maxMessageSize();
  }

  /**
   * While sends wait, look at `bufferedAmount` every few ms as well as on
   * `bufferedamountlow`: @roamhq/wrtc 0.10 never fires that event (nor has a threshold), and
   * without the poll a reliable transfer that filled its buffer would wait forever.
   */
  #armPoll(): void {
    this.#poll.start(
      () => {
        this.flush();
        // A closed data channel stays closed: the next attach() (its `open`) flushes again.
        if (this.#outbox.length === 0 || this.hooks.route() !== 'rtc' || !this.open) this.#poll.stop();
      },
      POLL_MS,
      true,
    );
  }

  /**
   * Written but not yet acknowledged data is bounded too (4 x the high watermark): the
   * sender keeps it for resending, and a runtime that does not report `bufferedAmount`
   * (@roamhq/wrtc) would otherwise take everything at once.
   */
  #windowFull(): boolean {
    return this.#sender.bytes - this.#outboxBytes > this.flow.highWaterMark * 4;
  }

  /** Writes waiting fragments while the current path has room. */
  protected override flush(): void {
    if (this.closed) return;
    if (this.hooks.route() === 'websocket') return this.#flushFallback();
    const dc = this.dc;
    if (dc?.readyState !== 'open') return;
    while (this.#outbox.length) {
      const next = this.#outbox[0] as Outgoing;
      const size = next.frag.bytes.byteLength + 5;
      if (dc.bufferedAmount + size > this.flow.highWaterMark && dc.bufferedAmount > 0) return this.#armPoll();
      if (this.gated() || this.#windowFull()) return;
      this.#outbox.shift();
      this.#outboxBytes -= next.frag.bytes.byteLength;
      try {
        this.write(dc, encodeFragment(next.frag));
        next.done?.resolve();
      } catch (err) {
        next.done?.reject(new PeerError('closed', `send failed on ${this.config.name}: ${(err as Error).message}`, { cause: err }));
      }
    }
  }

  #flushFallback(): void {
    const link = this.hooks.fallback();
    if (!link) return;
    while (this.#outbox.length && !this.#windowFull()) {
      const next = this.#outbox[0] as Outgoing;
      const f = next.frag;
      const frame: RelayFrameOut = { seq: f.seq };
      if (f.more) frame.more = true;
      // A whole text message goes as a plain string; fragments and bytes as [kind][bytes].
      frame.data = f.str !== undefined && plainTextFits(f.str, link.fragmentBytes) ? f.str : withKind(f.text, f.bytes);
      if (!link.trySend(this.config.name, frame)) {
        this.#unsubscribeFallbackDrain ??= link.onDrain(() => {
          this.#unsubscribeFallbackDrain = null;
          this.flush();
        });
        return;
      }
      this.#outbox.shift();
      this.#outboxBytes -= f.bytes.byteLength;
      this.sent++;
      next.done?.resolve();
      this.#armResend();
    }
  }

  #armResend(): void {
    this.#resendTimer.start(() => {
      if (this.closed || this.#sender.pendingCount === 0 || this.hooks.route() !== 'websocket') return;
      this.resend();
    }, FALLBACK_RTO_MS);
  }

  #onAck(seq: number): void {
    if (this.#sender.ack(seq) === 0) return;
    if (this.#resendTimer.running) {
      this.#resendTimer.stop();
      if (this.#sender.pendingCount > 0 && this.hooks.route() === 'websocket') this.#armResend();
    }
    // The window moved.
    this.flush();
  }

  protected take(data: string | Uint8Array): void {
    const frame = typeof data === 'string' ? null : decodeFrame(data);
    if (!frame) return this.malformed('frame');
    if ('ack' in frame) this.#onAck(frame.ack);
    else this.#onFragment(frame.fragment);
  }

  receiveRelay(frame: RelayFrameIn): void {
    if (this.closed) return;
    if (frame.ack !== undefined) this.#onAck(frame.ack);
    if (frame.data === undefined) return;
    const body = fallbackPayload(frame.data);
    if (!body || frame.seq === undefined) return this.malformed('relay frame');
    this.#onFragment({ seq: frame.seq, text: body.text, more: frame.more === true, bytes: body.bytes });
  }

  #onFragment(f: Fragment): void {
    let done: Delivered[];
    try {
      this.maxSize();
      done = this.#receiver.receive(f, this.reassemblyCap);
    } catch (err) {
      // A PeerError `protocol-violation` (peer/sequencing.ts): what the remote peer sends on
      // this channel can no longer be trusted, and holding more of it is what it may be after.
      this.close();
      return this.hooks.error(err as PeerError);
    }
    for (const m of done) this.deliver(m.bytes, m.text);
    this.#unackedReceived++;
    if (this.#unackedReceived >= ACK_EVERY) this.#sendAck();
    else this.#ackTimer.start(this.#ackDue, ACK_DELAY_MS);
  }

  /** Writes a 5-byte control frame on the data channel; false if it did not go out. */
  #control(frame: Uint8Array): boolean {
    if (this.dc?.readyState !== 'open') return false;
    try {
      this.dc.send(frame as Uint8Array<ArrayBuffer>);
      return true;
    } catch {
      return false; // closing; the next path carries it
    }
  }

  /**
   * Liveness traffic on the data channel. A keepalive is an acknowledgement frame, which the
   * other side takes in without answering. A `probe` asks for an answer even from a side
   * that has nothing to send: a copy of a fragment the other side already has (empty,
   * numbered with the last sequence number it acknowledged), which its receiver drops as a
   * duplicate and answers with an acknowledgement, as a TCP keepalive is answered (RFC 1122
   * section 4.2.3.6); peers of earlier versions answer it the same way, and an answer is
   * never answered. False if the data channel is not open or the frame did not go out.
   */
  override ping(probe: boolean): boolean {
    const frame = encodeAck(probe ? this.#sender.acked : this.#receiver.ack);
    if (probe) frame[0] = 0; // an empty fragment: no TEXT, MORE or ACK flag
    return this.#control(frame);
  }

  /** Acknowledges what arrived in order, on our current path. */
  #sendAck(): void {
    this.#ackTimer.stop();
    if (this.closed) return;
    const ack = this.#receiver.ack;
    const sent = this.hooks.route() === 'websocket' ? (this.hooks.fallback()?.trySend(this.config.name, { ack }) ?? false) : this.#control(encodeAck(ack));
    if (sent) this.#unackedReceived = 0;
    else this.#ackTimer.start(this.#ackDue, ACK_DELAY_MS * 5);
  }

  /** Rejects waiting sends, stops the timers and detaches from the data channel. Idempotent. */
  override close(): void {
    if (this.closed) return;
    super.close();
    for (const o of this.#outbox.splice(0)) o.done?.reject(new PeerError('closed', `channel ${this.config.name} closed before the message was sent`));
    for (const t of [this.#poll, this.#ackTimer, this.#resendTimer]) t.stop();
    this.#unsubscribeFallbackDrain?.();
    this.#unsubscribeFallbackDrain = null;
  }
}
