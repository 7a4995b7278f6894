/**
 * The cap on a message under reassembly (peer/flow.ts MIN_REASSEMBLY_CAP) never refuses
 * an honest peer. The sender checks a message against the max message size of ITS
 * connection; the receiver may see a smaller one, or none (a rebuilt connection without an
 * SCTP transport yet, 64 KiB by default), while the message arrives. Two RemotePeers on the
 * fake RTCPeerConnection (test/helpers/fake-rtc.ts) and a fake clock.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MIN_REASSEMBLY_CAP } from '../../peer/flow.js';
import { type FakePc, pair } from '../helpers/fake-rtc.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('reassembly cap', () => {
  it('a 100 KB message from a sender whose connection allows 256 KiB reaches a receiver whose connection has no SCTP transport', async () => {
    const { net, a, b, seen } = pair(5_000);
    await vi.advanceTimersByTimeAsync(100);
    expect(a.connected && b.connected).toBe(true);
    // A's connection reports Chromium's max message size; B's has no SCTP transport (64 KiB default).
    (net.pcs[0] as FakePc).sctp = { maxMessageSize: 262_144 };
    const got: unknown[] = [];
    b.on('message', (_ch, data) => got.push(data));
    const big = new Uint8Array(100_000).fill(7);
    // Cut into relay-sized fragments (12,000 bytes in the fake relay), as for the WebSocket.
    await a.send('reliable', big);
    await vi.advanceTimersByTimeAsync(100);
    // Before the fix B capped reassembly at its own 65,536 and closed A as a protocol-violation.
    expect(seen[1].errors).toEqual([]);
    expect(b.state).not.toBe('closed');
    expect(got).toHaveLength(1);
    expect((got[0] as Uint8Array).byteLength).toBe(100_000);
    await Promise.all([a.close(), b.close()]);
  });

  it('the cap follows the largest max message size seen, above the 256 KiB floor', async () => {
    expect(MIN_REASSEMBLY_CAP).toBe(262_144);
    const { net, a, b, seen } = pair(5_000);
    await vi.advanceTimersByTimeAsync(100);
    // Both connections once reported 1 MiB (Firefox advertises more); B's is then replaced by one without SCTP.
    for (const pc of net.pcs) (pc as FakePc).sctp = { maxMessageSize: 1 << 20 };
    const got: unknown[] = [];
    b.on('message', (_ch, data) => got.push(data));
    await b.send('reliable', 'hello'); // B reads its max message size while it is 1 MiB
    (net.pcs[1] as FakePc).sctp = null;
    await a.send('reliable', new Uint8Array(600_000));
    await vi.advanceTimersByTimeAsync(100);
    expect(seen[1].errors).toEqual([]);
    expect(got.map((m) => (m as Uint8Array).byteLength)).toEqual([600_000]);
    await Promise.all([a.close(), b.close()]);
  });
});
