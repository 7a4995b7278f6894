/**
 * A peer in the room cannot use the data channel liveness traffic (peer/liveness.ts,
 * ReliableChannel.ping in peer/reliable-stream.ts) as an amplifier or a lever. The attacker writes raw
 * frames on its end of the victim's `reliable` data channel (test/helpers/fake-rtc.ts, on a
 * fake clock): 10,000 probes (duplicate empty fragments, which any peer answers) or 10,000
 * keepalives (ack frames) in one second. The victim answers probes only with its coalesced
 * acknowledgements (fewer and no larger frames than it got), answers keepalives with
 * nothing, delivers nothing to the app, reports no error and keeps its path.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeAck } from '../../peer/framing.js';
import { kinds, pair } from '../helpers/fake-rtc.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

const FLOOD = 10_000;

/** Connected victim (A, initiator) and attacker (B); `write` puts raw bytes on B's end of `reliable`. */
async function setup(): Promise<ReturnType<typeof pair> & { write(frame: Uint8Array): void; delivered: unknown[] }> {
  const p = pair(5_000);
  await vi.advanceTimersByTimeAsync(100);
  expect(p.a.connected).toBe(true);
  const end = p.net.answerer.get('reliable');
  if (!end) throw new Error('no reliable channel');
  const delivered: unknown[] = [];
  p.a.on('message', (_ch, data) => delivered.push(data));
  return { ...p, write: (frame) => end.send(frame), delivered };
}

describe('adversarial: liveness traffic', () => {
  it('10,000 probes in a second get at most one coalesced 5-byte ack per 16 probes or 20 ms, and deliver nothing', async () => {
    const { net, a, b, seen, write, delivered } = await setup();
    const before = kinds(net.wires[0]).acks;
    for (let ms = 0; ms < 1_000; ms++) {
      for (let i = 0; i < FLOOD / 1_000; i++) {
        // Empty fragments numbered anywhere in the half the victim has already received.
        const probe = encodeAck((0xffffffff - ((ms * 7919 + i * 104729) % 0x7fffffff)) >>> 0);
        probe[0] = 0;
        write(probe);
      }
      await vi.advanceTimersByTimeAsync(1);
    }
    await vi.advanceTimersByTimeAsync(100);
    const answers = kinds(net.wires[0]);
    const acks = answers.acks - before;
    // Coalesced: one per 16 fragments received, or one per 20 ms; plus A's own keepalives.
    expect(acks).toBeGreaterThan(0);
    expect(acks).toBeLessThanOrEqual(FLOOD / 16 + 1_100 / 20 + 2);
    expect(answers.probes).toBe(0);
    for (const f of net.wires[0].frames) expect((f.data as Uint8Array).byteLength).toBe(5);
    expect(delivered).toEqual([]);
    expect(seen[0]).toEqual({ paths: [], disconnected: 0, errors: [] });
    expect(a.connected).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });

  it('10,000 keepalives in a second get no answer at all (only the victim own keepalives, one per check)', async () => {
    const { net, a, b, seen, write, delivered } = await setup();
    const before = net.wires[0].frames.length;
    for (let ms = 0; ms < 1_000; ms++) {
      for (let i = 0; i < FLOOD / 1_000; i++) write(encodeAck(0xffffffff));
      await vi.advanceTimersByTimeAsync(1);
    }
    // A wrote nothing of its own: at most one keepalive per 1.25 s check in that second.
    expect(net.wires[0].frames.length - before).toBeLessThanOrEqual(1);
    expect(delivered).toEqual([]);
    expect(seen[0]).toEqual({ paths: [], disconnected: 0, errors: [] });
    await Promise.all([a.close(), b.close()]);
  });
});
