/**
 * Sequencing for `reliable` channels, so that they stay ordered and lossless while a peer
 * moves between its data channel and the WebSocket fallback, or to a rebuilt connection.
 *
 * A message is cut into fragments of at most `maxFragment` bytes; every fragment gets the
 * next 32-bit sequence number of its channel, whatever path carries it. The receiver
 * delivers fragments strictly in sequence, drops duplicates, holds early ones (bounded),
 * and acknowledges cumulatively; the sender keeps every fragment until it is acknowledged
 * and sends them all again after a path change, so nothing lost in flight on the old path
 * is missing and nothing is delivered twice. Sequence numbers compare with serial-number
 * arithmetic (RFC 1982), so they may wrap; fewer than 2^31 may be unacknowledged.
 */
import { encoder } from './bytes.js';
import { PeerError } from './errors.js';

/** True when `a` is newer than `b` in 32-bit serial-number arithmetic (RFC 1982 §3.2). */
export function seqNewer(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x80000000;
}

export interface Fragment {
  seq: number;
  /** The message is text (UTF-8 bytes); otherwise bytes. */
  text: boolean;
  /** More fragments of the same message follow. */
  more: boolean;
  bytes: Uint8Array;
  /** Set by the sender when the fragment is a whole text message: that text. */
  str?: string;
}

export interface Delivered {
  text: boolean;
  bytes: Uint8Array;
}

/**
 * Splits a message into fragment bodies of at most `maxFragment` bytes (at least one).
 * `encoded`: the UTF-8 of a text payload, when the caller has it already.
 */
export function splitMessage(payload: string | Uint8Array, maxFragment: number, encoded?: Uint8Array): { text: boolean; bytes: Uint8Array }[] {
  const text = typeof payload === 'string';
  const bytes = encoded ?? (text ? encoder.encode(payload) : payload);
  if (bytes.byteLength <= maxFragment) return [{ text, bytes }];
  const out: { text: boolean; bytes: Uint8Array }[] = [];
  for (let at = 0; at < bytes.byteLength; at += maxFragment) out.push({ text, bytes: bytes.subarray(at, at + maxFragment) });
  return out;
}

/** The sending half of one reliable channel. */
export class ReliableSender {
  #nextSeq: number;
  /** Unacknowledged fragments from `head` on (a queue without O(n) shifts). */
  #unacked: Fragment[] = [];
  #head = 0;
  /** Payload bytes kept until acknowledged. */
  bytes = 0;

  /** `firstSeq`: where numbering starts (tests start near the 2^32 wrap). */
  constructor(firstSeq = 0) {
    this.#nextSeq = firstSeq >>> 0;
  }

  /** Numbers the fragments of one message and keeps them until acknowledged. */
  push(payload: string | Uint8Array, maxFragment: number, encoded?: Uint8Array): Fragment[] {
    const parts = splitMessage(payload, maxFragment, encoded);
    const frags = parts.map((p, i): Fragment => {
      const seq = this.#nextSeq;
      this.#nextSeq = (this.#nextSeq + 1) >>> 0;
      const f: Fragment = { seq, text: p.text, more: i < parts.length - 1, bytes: p.bytes };
      if (typeof payload === 'string' && parts.length === 1) f.str = payload;
      return f;
    });
    for (const f of frags) {
      this.#unacked.push(f);
      this.bytes += f.bytes.byteLength;
    }
    return frags;
  }

  /**
   * Cumulative acknowledgement: the receiver has everything up to and including `seq`.
   * Returns how many fragments it released. Acks for numbers never sent are ignored.
   */
  ack(seq: number): number {
    // Only numbers we sent can be acknowledged: an ack beyond the last one is bogus.
    if (seqNewer(seq, (this.#nextSeq - 1) >>> 0)) return 0;
    let n = 0;
    while (this.#head < this.#unacked.length) {
      const first = this.#unacked[this.#head] as Fragment;
      if (seqNewer(first.seq, seq)) break;
      this.#head++;
      this.bytes -= first.bytes.byteLength;
      n++;
    }
    if (this.#head === this.#unacked.length) {
      this.#unacked = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#unacked.length) {
      this.#unacked = this.#unacked.slice(this.#head);
      this.#head = 0;
    }
    return n;
  }

  /** Fragments sent or queued and not yet acknowledged, oldest first. */
  get pending(): readonly Fragment[] {
    return this.#head === 0 ? this.#unacked : this.#unacked.slice(this.#head);
  }

  /** Number of unacknowledged fragments. */
  get pendingCount(): number {
    return this.#unacked.length - this.#head;
  }

  /** The newest sequence number the receiver has acknowledged (the one before the first unacknowledged). */
  get acked(): number {
    return ((this.#unacked[this.#head]?.seq ?? this.#nextSeq) - 1) >>> 0;
  }
}

/**
 * Early fragments a receiver holds at most, whatever their size: without a count, empty
 * fragments would pass any byte bound (each costs an object and a map entry). A sender
 * within the server's relay limits (burst 800, 400/s) has fewer than 2,000 frames in flight
 * before its 2 s resend; held fragments dropped over the bound come again with that resend.
 */
export const MAX_HELD_FRAGMENTS = 4096;

/**
 * The smallest fragment a sender of this library marks `more`: it cuts a message only for
 * the WebSocket fallback, into fragments of `FallbackLink.fragmentBytes` (never under 64, see
 * peer/fallback-link.ts), and only the last one is shorter. A shorter `more` fragment would cost
 * the receiver an object and a buffer (some 150 bytes) per byte it counts, so it breaks the
 * framing: with this floor, a message under reassembly holds at most max/64 fragments, about
 * 8x their bytes in memory at worst (7.5x measured in RSS on Node 20).
 */
export const MIN_MORE_FRAGMENT = 64;

/** The remote peer broke the framing: no sender of this library does that. */
const violation = (what: string): PeerError => new PeerError('protocol-violation', `peer broke the reliable framing: ${what}`);

/** The receiving half of one reliable channel. */
export class ReliableReceiver {
  #expected: number;
  readonly #held = new Map<number, Fragment>();
  #heldBytes = 0;
  #parts: Uint8Array[] = [];
  #partsBytes = 0;
  #partsText = false;

  readonly #maxHeldBytes: number;

  /**
   * `maxHeldBytes`: how much out-of-order data may wait for a gap to fill (at most
   * MAX_HELD_FRAGMENTS fragments too); `firstSeq` as the sender's.
   */
  constructor(maxHeldBytes: number, firstSeq = 0) {
    this.#maxHeldBytes = maxHeldBytes;
    this.#expected = firstSeq >>> 0;
  }

  /** The cumulative acknowledgement: the last sequence number received in order. */
  get ack(): number {
    return (this.#expected - 1) >>> 0;
  }

  /**
   * Takes one fragment; returns the messages it completes, in order. Throws PeerError
   * `protocol-violation` on a fragment marked `more` shorter than MIN_MORE_FRAGMENT (a sender
   * never cuts one) and when a message being reassembled grows past `maxMessageBytes` (no
   * sender sends such a message): after that the channel's stream cannot be trusted.
   */
  receive(f: Fragment, maxMessageBytes: number): Delivered[] {
    const size = f.bytes.byteLength;
    if (f.more && size < MIN_MORE_FRAGMENT) throw violation(`fragment of ${size} bytes marked more`);
    const ahead = (f.seq - this.#expected) >>> 0;
    // Already delivered (a duplicate): nothing to do.
    if (ahead >= 0x80000000) return [];
    if (ahead > 0) {
      // Early: held until the gap fills, unless a copy is held already or the buffer is full
      // (the sender sends it again after a path change or a fallback resend timeout).
      if (!this.#held.has(f.seq) && this.#held.size < MAX_HELD_FRAGMENTS && this.#heldBytes + size <= this.#maxHeldBytes) {
        this.#held.set(f.seq, f);
        this.#heldBytes += size;
      }
      return [];
    }
    const out: Delivered[] = [];
    let next: Fragment | undefined = f;
    while (next) {
      this.#take(next, out, maxMessageBytes);
      this.#expected = (this.#expected + 1) >>> 0;
      next = this.#held.get(this.#expected);
      if (next) {
        this.#held.delete(this.#expected);
        this.#heldBytes -= next.bytes.byteLength;
      }
    }
    return out;
  }

  /** Fragments held early, waiting for a gap to fill. */
  get heldCount(): number {
    return this.#held.size;
  }

  #take(f: Fragment, out: Delivered[], max: number): void {
    if (this.#parts.length === 0) this.#partsText = f.text;
    this.#parts.push(f.bytes);
    this.#partsBytes += f.bytes.byteLength;
    if (this.#partsBytes > max) throw violation(`message over ${max} bytes`);
    if (f.more) return;
    const parts = this.#parts;
    const total = this.#partsBytes;
    this.#parts = [];
    this.#partsBytes = 0;
    if (parts.length === 1) {
      out.push({ text: this.#partsText, bytes: parts[0] as Uint8Array });
      return;
    }
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.byteLength;
    }
    out.push({ text: this.#partsText, bytes });
  }
}
