/**
 * The data channel liveness probe (ReliableChannel.ping, peer/reliable-stream.ts): an empty fragment numbered
 * ReliableSender.acked must be a duplicate for the other side's ReliableReceiver in every
 * state the two can be in (fragments in flight, some lost, numbers wrapping past 2^32), so
 * that the receiver answers it with an ack and delivers and holds nothing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeAck, encodeFragment } from '../../peer/framing.js';
import { type Fragment, ReliableReceiver, ReliableSender } from '../../peer/sequencing.js';

/** The reassembly cap a Channel passes (at least MIN_REASSEMBLY_CAP). */
const CAP = 256 * 1024;

/** The probe as Channel.ping writes it. */
function probe(sender: ReliableSender): Uint8Array {
  const frame = encodeAck(sender.acked);
  frame[0] = 0;
  return frame;
}

describe('liveness probe', () => {
  it('is an empty final fragment numbered with the last acknowledged sequence number', () => {
    const sender = new ReliableSender();
    expect(decodeFrame(probe(sender))).toEqual({ fragment: { seq: 0xffffffff, text: false, more: false, bytes: new Uint8Array(0) } });
    sender.push('a', 100);
    sender.push('b', 100);
    expect(sender.acked).toBe(0xffffffff); // nothing acknowledged yet
    sender.ack(0);
    expect(sender.acked).toBe(0);
    sender.ack(1);
    expect(sender.acked).toBe(1);
  });

  it('is a duplicate for the receiver in any state: nothing delivered or held, the ack unchanged', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 0xfffffff0, 0x7ffffff8),
        fc.array(fc.record({ sends: fc.integer({ min: 0, max: 3 }), deliver: fc.integer({ min: 0, max: 4 }), lose: fc.boolean(), ack: fc.boolean() }), { maxLength: 40 }),
        (first, steps) => {
          const sender = new ReliableSender(first);
          const receiver = new ReliableReceiver(1 << 20, first);
          const inFlight: Fragment[] = [];
          const sent: string[] = [];
          const delivered: string[] = [];
          const take = (f: Fragment): void => {
            for (const m of receiver.receive(f, CAP)) delivered.push(new TextDecoder().decode(m.bytes));
          };
          for (const step of steps) {
            for (let i = 0; i < step.sends; i++) {
              sent.push(`m${sent.length}`);
              inFlight.push(...sender.push(sent.at(-1)!, 100));
            }
            // Deliver (or lose) a few of the fragments in flight, in order.
            for (const f of inFlight.splice(0, step.deliver)) if (!step.lose) take(f);
            if (step.ack) sender.ack(receiver.ack);

            const ackBefore = receiver.ack;
            const d = decodeFrame(probe(sender));
            if (!d || !('fragment' in d)) throw new Error('probe did not decode as a fragment');
            expect(receiver.receive(d.fragment, CAP)).toEqual([]);
            expect(receiver.ack).toBe(ackBefore);
          }
          // The probes left no trace: resending everything unacknowledged completes the stream.
          for (const f of sender.pending) take(f);
          expect(delivered).toEqual(sent);
        },
      ),
    );
  });

  it('a probe sent before anything is a duplicate too (the receiver expects 0, the probe is 2^32 - 1)', () => {
    const receiver = new ReliableReceiver(1024);
    const d = decodeFrame(probe(new ReliableSender()));
    if (!d || !('fragment' in d)) throw new Error('probe did not decode as a fragment');
    expect(receiver.receive(d.fragment, CAP)).toEqual([]);
    expect(receiver.receive(encodeFragmentOf(0, 'first'), CAP)).toEqual([{ text: true, bytes: new TextEncoder().encode('first') }]);
  });
});

function encodeFragmentOf(seq: number, text: string): Fragment {
  const frame = decodeFrame(encodeFragment({ seq, text: true, more: false, bytes: new TextEncoder().encode(text) }));
  if (!frame || !('fragment' in frame)) throw new Error('bad test frame');
  return frame.fragment;
}
