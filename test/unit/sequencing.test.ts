/**
 * The sequencing of reliable channels (peer/sequencing.ts), under random loss, duplication
 * and reordering of frames while the path switches: the messages delivered are always a
 * prefix of those sent, in order, without duplicates, and all of them once a lossless path
 * carries the retransmissions.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PeerError } from '../../peer/errors.js';
import { decodeFrame, encodeAck, encodeFragment } from '../../peer/framing.js';
import { type Fragment, MAX_HELD_FRAGMENTS, MIN_MORE_FRAGMENT, ReliableReceiver, ReliableSender, splitMessage } from '../../peer/sequencing.js';

const decoder = new TextDecoder();

type Frame = { kind: 'data'; f: Fragment } | { kind: 'ack'; seq: number };

type Step = { op: 'send' } | { op: 'deliver'; pick: number } | { op: 'drop'; pick: number } | { op: 'dup'; pick: number } | { op: 'ack' } | { op: 'switch' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.constant({ op: 'send' as const }), weight: 4 },
  { arbitrary: fc.nat().map((pick) => ({ op: 'deliver' as const, pick })), weight: 6 },
  { arbitrary: fc.nat().map((pick) => ({ op: 'drop' as const, pick })), weight: 2 },
  { arbitrary: fc.nat().map((pick) => ({ op: 'dup' as const, pick })), weight: 1 },
  { arbitrary: fc.constant({ op: 'ack' as const }), weight: 2 },
  { arbitrary: fc.constant({ op: 'switch' as const }), weight: 1 },
);

/**
 * Text and byte messages, some longer than several fragments, some empty (fragments are at
 * least MIN_MORE_FRAGMENT bytes, as a sender cuts them).
 */
const messageArb = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 120 }), fc.uint8Array({ maxLength: 300 }));

function asComparable(d: { text: boolean; bytes: Uint8Array }): string | number[] {
  return d.text ? decoder.decode(d.bytes) : [...d.bytes];
}

function expected(m: string | Uint8Array): string | number[] {
  return typeof m === 'string' ? m : [...m];
}

/**
 * Runs the steps: frames in flight both ways may be delivered out of order, lost or
 * duplicated; `switch` sends every unacknowledged fragment again (what a path change does).
 * Then a lossless, in-order path carries a final retransmission and the acks.
 */
function simulate(messages: (string | Uint8Array)[], steps: Step[], maxFragment: number, maxHeld: number): { delivered: (string | number[])[]; prefixOk: boolean } {
  const sender = new ReliableSender();
  const receiver = new ReliableReceiver(maxHeld);
  const toReceiver: Frame[] = [];
  const toSender: Frame[] = [];
  const delivered: (string | number[])[] = [];
  let next = 0;
  let prefixOk = true;
  // Frames go through the data channel codec, as they do on the wire.
  const wire = (f: Fragment): Frame => {
    const d = decodeFrame(encodeFragment(f));
    if (!d || !('fragment' in d)) throw new Error('codec');
    return { kind: 'data', f: { ...d.fragment, bytes: d.fragment.bytes.slice() } };
  };
  const arrive = (frame: Frame): void => {
    if (frame.kind === 'ack') {
      sender.ack(frame.seq);
      return;
    }
    for (const d of receiver.receive(frame.f, Infinity)) {
      const i = delivered.length;
      delivered.push(asComparable(d));
      if (i >= messages.length || JSON.stringify(delivered[i]) !== JSON.stringify(expected(messages[i] as string | Uint8Array))) prefixOk = false;
    }
  };
  const ackFrame = (): Frame => {
    const d = decodeFrame(encodeAck(receiver.ack));
    if (!d || !('ack' in d)) throw new Error('codec');
    return { kind: 'ack', seq: d.ack };
  };
  for (const step of steps) {
    const both = [...toReceiver.map((_f, i) => ['r', i] as const), ...toSender.map((_f, i) => ['s', i] as const)];
    switch (step.op) {
      case 'send':
        if (next < messages.length) for (const f of sender.push(messages[next++] as string | Uint8Array, maxFragment)) toReceiver.push(wire(f));
        break;
      case 'ack':
        toSender.push(ackFrame());
        break;
      case 'switch':
        for (const f of sender.pending) toReceiver.push(wire(f));
        break;
      default: {
        if (both.length === 0) break;
        const [side, i] = both[step.pick % both.length] as readonly ['r' | 's', number];
        const queue = side === 'r' ? toReceiver : toSender;
        const frame = queue[i] as Frame;
        if (step.op === 'dup') queue.push(frame);
        else {
          queue.splice(i, 1);
          if (step.op === 'deliver') arrive(frame);
        }
      }
    }
  }
  // Whatever is still in flight is lost with the old path; the new one is lossless and in order.
  toReceiver.length = 0;
  toSender.length = 0;
  while (next < messages.length) for (const f of sender.push(messages[next++] as string | Uint8Array, maxFragment)) arrive(wire(f));
  for (const f of sender.pending) arrive(wire(f));
  arrive(ackFrame());
  if (sender.pendingCount !== 0) prefixOk = false;
  return { delivered, prefixOk };
}

describe('reliable channel sequencing', () => {
  it('delivers every message once, in order, through loss, duplication, reordering and path switches', () => {
    fc.assert(
      fc.property(
        fc.array(messageArb, { maxLength: 40 }),
        fc.array(stepArb, { maxLength: 300 }),
        fc.integer({ min: MIN_MORE_FRAGMENT, max: MIN_MORE_FRAGMENT + 40 }),
        (messages, steps, maxFragment) => {
          const { delivered, prefixOk } = simulate(messages, steps, maxFragment, 1 << 20);
          expect(prefixOk).toBe(true);
          expect(delivered).toEqual(messages.map(expected));
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('still delivers everything when the hold buffer for early fragments is tiny (they are sent again)', () => {
    fc.assert(
      fc.property(fc.array(messageArb, { maxLength: 30 }), fc.array(stepArb, { maxLength: 200 }), (messages, steps) => {
        const { delivered, prefixOk } = simulate(messages, steps, MIN_MORE_FRAGMENT, 100);
        expect(prefixOk).toBe(true);
        expect(delivered).toEqual(messages.map(expected));
      }),
      { numRuns: 500 },
    );
  });

  it('wraps sequence numbers past 2^32 - 1', () => {
    const sender = new ReliableSender(0xfffffffe);
    const receiver = new ReliableReceiver(1024, 0xfffffffe);
    const frags = ['a', 'b', 'c', 'd'].flatMap((m) => sender.push(m, 8));
    expect(frags.map((f) => f.seq)).toEqual([0xfffffffe, 0xffffffff, 0, 1]);
    const out = [frags[2], frags[0], frags[3], frags[1]].flatMap((f) => receiver.receive(f as Fragment, 1024)).map((d) => decoder.decode(d.bytes));
    expect(out).toEqual(['a', 'b', 'c', 'd']);
    expect(receiver.ack).toBe(1);
    sender.ack(0xffffffff);
    expect(sender.pending.map((f) => f.seq)).toEqual([0, 1]);
    sender.ack(1);
    expect(sender.pendingCount).toBe(0);
  });

  it('ignores acks for numbers never sent, and splits text into fragments that rejoin', () => {
    const sender = new ReliableSender();
    sender.push('hello', 2);
    expect(sender.ack(10)).toBe(0);
    expect(sender.pendingCount).toBe(3);
    expect(splitMessage('héllo wörld', 3).every((p) => p.bytes.byteLength <= 3)).toBe(true);
    expect(splitMessage(new Uint8Array(0), 3)).toHaveLength(1);
  });

  it('refuses malformed data channel frames', () => {
    expect(decodeFrame(new Uint8Array([0, 0, 0]))).toBeNull();
    expect(decodeFrame(new Uint8Array([8, 0, 0, 0, 1]))).toBeNull();
    expect(decodeFrame(new Uint8Array([4 | 1, 0, 0, 0, 1]))).toBeNull();
    expect(decodeFrame(new Uint8Array([4, 0, 0, 0, 1, 9]))).toBeNull();
    expect(decodeFrame(new Uint8Array([4, 0, 0, 0, 7]))).toEqual({ ack: 7 });
  });
});

/** What a peer that breaks the framing sends; none of these come from a ReliableSender. */
describe('reliable receiver bounds (a hostile peer)', () => {
  const empty = new Uint8Array(0);
  const CAP = 256 * 1024;
  const frag = (seq: number, bytes: Uint8Array, more = false): Fragment => ({ seq, text: false, more, bytes });
  const violation = (fn: () => unknown): PeerError => {
    try {
      fn();
    } catch (err) {
      if (err instanceof PeerError) return err;
      throw err;
    }
    throw new Error('no PeerError thrown');
  };

  it('holds at most MAX_HELD_FRAGMENTS early fragments, even empty ones that pass any byte bound', () => {
    const receiver = new ReliableReceiver(1024);
    for (let seq = 1; seq <= 20_000; seq++) receiver.receive(frag(seq, empty), CAP);
    expect(receiver.heldCount).toBe(MAX_HELD_FRAGMENTS);
    // Held ones still complete the stream when the gap fills; the rest come again with the sender's resend.
    expect(receiver.receive(frag(0, empty), CAP)).toHaveLength(MAX_HELD_FRAGMENTS + 1);
    expect(receiver.heldCount).toBe(0);
    expect(receiver.ack).toBe(MAX_HELD_FRAGMENTS);
  });

  it('refuses a fragment marked more shorter than MIN_MORE_FRAGMENT (empty ones too) with protocol-violation, wherever its seq falls', () => {
    for (const seq of [0, 5, 0xffffffff]) {
      for (const size of [0, 1, MIN_MORE_FRAGMENT - 1]) {
        const err = violation(() => new ReliableReceiver(1024).receive(frag(seq, new Uint8Array(size), true), CAP));
        expect(err.code).toBe('protocol-violation');
        expect(err.message).toMatch(new RegExp(`fragment of ${size} bytes marked more`));
      }
    }
    // An empty message (one empty final fragment) is legitimate, and so is a short last fragment.
    expect(new ReliableReceiver(1024).receive(frag(0, empty), CAP)).toEqual([{ text: false, bytes: empty }]);
    const r = new ReliableReceiver(1024);
    expect(r.receive(frag(0, new Uint8Array(MIN_MORE_FRAGMENT), true), CAP)).toEqual([]);
    expect(r.receive(frag(1, new Uint8Array(1)), CAP)[0]?.bytes.byteLength).toBe(MIN_MORE_FRAGMENT + 1);
  });

  it('1-byte fragments marked more cannot pile up: the first one is a violation, before anything is held', () => {
    // Before the floor, each 1-byte fragment counted 1 byte against the cap but kept a view
    // and its buffer (~100x that) until the message ended: a 256 KiB cap held ~26 MB.
    const receiver = new ReliableReceiver(8 << 20);
    let seq = 0;
    const err = violation(() => {
      while (seq < 200_000) receiver.receive(frag(seq++, new Uint8Array(1), true), CAP);
    });
    expect(err.code).toBe('protocol-violation');
    expect(seq).toBe(1);
  });

  it('caps a message under reassembly at the max message size: exactly the max passes, one byte more is a violation', () => {
    const ok = new ReliableReceiver(1024);
    expect(ok.receive(frag(0, new Uint8Array(64), true), 100)).toEqual([]);
    expect(ok.receive(frag(1, new Uint8Array(36)), 100)[0]?.bytes.byteLength).toBe(100);
    const bad = new ReliableReceiver(1 << 20);
    let seq = 0;
    const err = violation(() => {
      // Fragments marked more, forever: before the cap this grew without limit.
      while (seq < 1000) bad.receive(frag(seq++, new Uint8Array(1000), true), 64 * 1024);
    });
    expect(err.code).toBe('protocol-violation');
    expect(err.message).toMatch(/over 65536 bytes/);
    expect(seq).toBe(66);
  });
});
