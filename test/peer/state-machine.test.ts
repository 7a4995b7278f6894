/**
 * The connection state machine of a remote peer (peer/remote-peer.ts with recovery.ts,
 * liveness.ts and the fallback route) on a fake RTCPeerConnection (test/helpers/fake-rtc.ts)
 * and a FakeClock (test/helpers/fake-clock.ts) injected as the peers' clock: connect, fail,
 * fall back, recover, return, and a side that only listens. Minutes of fake time run in a
 * second or two, deterministically; the real-peer versions of the same paths are the other
 * files of this folder (real werift peers) and test/nat/ (real networks).
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../helpers/fake-clock.js';
import { type FakePair, type FakePairOptions, fakePair, run } from '../helpers/fake-rtc.js';

/** A connected pair on a fresh FakeClock; ICE reports `direct` once connected. */
async function connected(opts: Partial<FakePairOptions> = {}): Promise<FakePair & { clock: FakeClock }> {
  const clock = new FakeClock();
  const p = fakePair({ afterMs: 2_000, deliverFallback: true, ...opts, clock });
  p.net.path = 'direct';
  await run(clock, 100);
  expect(p.a.connected && p.b.connected, 'fake connection did not open').toBe(true);
  return { ...p, clock };
}

/** Calls `fn` every `ms` on the fake clock; returns the stop function. */
function every(clock: FakeClock, ms: number, fn: () => void): () => void {
  const handle = clock.setInterval(fn, ms);
  return () => clock.clearInterval(handle);
}

const texts = (got: { channel: string; data: unknown }[], channel: string): unknown[] => got.filter((m) => m.channel === channel).map((m) => m.data);

describe('remote peer state machine on a fake clock', () => {
  it('connect: both sides connected on the data channels, path direct, nothing else happens in a minute', async () => {
    const { a, b, seen, clock } = await connected();
    expect(a.path).toBe('direct');
    await run(clock, 60_000, 50);
    expect(seen).toEqual([
      { paths: ['direct'], disconnected: 0, errors: [] },
      { paths: ['direct'], disconnected: 0, errors: [] },
    ]);
    expect(a.generation).toBe(0);
    await Promise.all([a.close(), b.close()]);
  });

  it('fail, fall back, recover, return: ICE failure moves both sides to the WebSocket at once; the rebuilt connection brings them back; reliable stays complete and in order', async () => {
    const { net, a, b, seen, got, clock } = await connected();
    let n = 0;
    const stop = every(clock, 50, () => void a.send('reliable', `m${n++}`));
    await run(clock, 1_000);
    // ICE fails for good and the network stays blocked: the initiator falls back at once and
    // tells the answerer, which follows.
    net.cut = true;
    net.blocked = true;
    net.latest[0]?.report('failed');
    await run(clock, 100);
    expect(seen[0].paths).toEqual(['direct', 'websocket']);
    expect(seen[1].paths).toEqual(['direct', 'websocket']);
    expect(a.connected && b.connected).toBe(true);
    expect(seen[0].disconnected).toBe(1);
    // Recovery keeps rebuilding in the background (generation 1 at once, then with backoff)
    // while messages go over the fallback.
    await run(clock, 20_000, 20);
    expect(a.generation).toBeGreaterThanOrEqual(2);
    expect(a.path).toBe('websocket');
    // The network heals: the next attempt connects and both sides return to the data channels.
    net.cut = false;
    net.blocked = false;
    await run(clock, 30_000, 20);
    expect(seen[0].paths).toEqual(['direct', 'websocket', 'direct']);
    expect(seen[1].paths).toEqual(['direct', 'websocket', 'direct']);
    stop();
    await run(clock, 3_000, 20);
    // Every message once, in order, across both switches (sent again after each, duplicates dropped).
    expect(texts(got[1], 'reliable')).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
    expect(seen.map((s) => s.errors)).toEqual([[], []]);
    await Promise.all([a.close(), b.close()]);
  });

  it('fall back when ICE never connects: connected on the WebSocket after fallback.afterMs, messages flow', async () => {
    const clock = new FakeClock();
    const { net, a, b, seen, got } = fakePair({ afterMs: 2_000, deliverFallback: true, clock });
    net.blocked = true;
    await run(clock, 1_900);
    expect(a.connected || b.connected).toBe(false);
    await run(clock, 200);
    expect(a.connected && a.path === 'websocket').toBe(true);
    await run(clock, 100);
    expect(b.connected && b.path === 'websocket').toBe(true);
    void a.send('reliable', 'over the fallback');
    void b.send('unreliable', 'back');
    await run(clock, 100);
    expect(texts(got[1], 'reliable')).toEqual(['over the fallback']);
    expect(texts(got[0], 'unreliable')).toEqual(['back']);
    expect(seen.map((s) => s.paths)).toEqual([['websocket'], ['websocket']]);
    await Promise.all([a.close(), b.close()]);
  });

  it('no fallback configured: a failed connection stays disconnected and is rebuilt, with backoff', async () => {
    const { net, a, b, seen, clock } = await connected({ afterMs: false });
    net.blocked = true;
    net.latest[0]?.report('failed');
    await run(clock, 100);
    expect(a.state).toBe('disconnected');
    expect(a.generation).toBe(1);
    // Attempts every attemptTimeoutMs (5 s) plus a backoff of 0.25-0.5, 0.5-1, 1-2 s...
    await run(clock, 30_000, 50);
    expect(a.generation).toBeGreaterThanOrEqual(4);
    expect(a.generation).toBeLessThanOrEqual(6);
    expect(seen[0].paths).toEqual(['direct']);
    net.blocked = false;
    await run(clock, 30_000, 50);
    expect(a.state).toBe('connected');
    await Promise.all([a.close(), b.close()]);
  });

  it('one side only listens: A streams game state, B never sends; no false fallback in 5 minutes', async () => {
    const { a, b, seen, got, clock } = await connected();
    const stop = every(clock, 1000 / 30, () => void a.send('unreliable', 'state'));
    await run(clock, 300_000, 20);
    stop();
    expect(seen.map((s) => s.paths)).toEqual([['direct'], ['direct']]);
    expect(seen.map((s) => s.disconnected)).toEqual([0, 0]);
    expect(a.generation).toBe(0);
    expect(got[1].length).toBeGreaterThan(8_900);
    await Promise.all([a.close(), b.close()]);
  });

  it('one side only listens, and it is a peer without liveness of its own (an earlier version): it answers probes; no false fallback', async () => {
    const { a, b, seen, clock } = await connected({ quietB: true });
    const stop = every(clock, 1000 / 30, () => void a.send('unreliable', 'state'));
    await run(clock, 120_000, 20);
    stop();
    expect(seen.map((s) => s.paths)).toEqual([['direct'], ['direct']]);
    expect(seen.map((s) => s.disconnected)).toEqual([0, 0]);
    await Promise.all([a.close(), b.close()]);
  });

  it('the listening side goes silent for real (path cut): the streaming side falls back within afterMs plus one check', async () => {
    const { net, a, b, seen, clock } = await connected();
    const stop = every(clock, 1000 / 30, () => void a.send('unreliable', 'state'));
    await run(clock, 5_000);
    // Nothing arrives any more and no new connection gets through either.
    net.cut = true;
    net.blocked = true;
    const cutAt = clock.now();
    let fellBackAt = 0;
    a.once('path-change', () => (fellBackAt = clock.now()));
    await run(clock, 5_000);
    stop();
    expect(seen[0].paths).toEqual(['direct', 'websocket']);
    expect(fellBackAt - cutAt).toBeGreaterThan(2_000);
    expect(fellBackAt - cutAt).toBeLessThanOrEqual(2_000 + 500 + 10);
    await Promise.all([a.close(), b.close()]);
  });

  it('close stops every timer of the peers', async () => {
    const { a, b, clock } = await connected();
    await Promise.all([a.close(), b.close()]);
    await run(clock, 100);
    expect(clock.pending()).toEqual({ timeouts: 0, intervals: 0 });
  });
});
