/**
 * The data channel liveness machine (peer/liveness.ts, ReliableChannel.ping in
 * peer/reliable-stream.ts) on a fake clock (vitest's fake timers, Date included) and a fake RTCPeerConnection
 * (test/helpers/fake-rtc.ts) whose data channels deliver to each other after 1 ms, unless the
 * test cuts the link. Minutes of fake time run in milliseconds; the real two-peer and NAT-lab
 * versions are test/peer/liveness.test.ts and test/nat/liveness.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ChannelOptions } from '../../peer/channels.js';
import type { RemotePeer } from '../../peer/remote-peer.js';
import { kinds, pair } from '../helpers/fake-rtc.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('liveness on a fake clock', () => {
  it('a side that only streams on an unreliable channel hears the listener: no fallback in 60 s, and the streaming side sends nothing but its stream', async () => {
    const { net, a, b, seen } = await connected(5_000);
    const got: unknown[] = [];
    b.on('message', (_ch, data) => got.push(data));
    const stream = setInterval(() => void a.send('unreliable', 'state'), 1000 / 30);
    await vi.advanceTimersByTimeAsync(60_000);
    clearInterval(stream);
    expect(seen).toEqual([
      { paths: [], disconnected: 0, errors: [] },
      { paths: [], disconnected: 0, errors: [] },
    ]);
    expect(a.generation).toBe(0);
    expect(a.connected && b.connected).toBe(true);
    expect(got.length).toBeGreaterThan(1_750);
    // B, which writes nothing, sends a keepalive at each check (a quarter of afterMs); A,
    // which hears B all the time, never probes, and keepalives are not answered: A writes
    // nothing but its stream (no reliable message in its SCTP send window).
    const ab = kinds(net.wires[0]);
    const ba = kinds(net.wires[1]);
    expect(ab).toEqual({ probes: 0, acks: 0, data: got.length });
    expect(ba.probes).toBe(0);
    expect(ba.data).toBe(0);
    expect(ba.acks).toBeGreaterThanOrEqual(46);
    expect(ba.acks).toBeLessThanOrEqual(49);
    await closeAll(a, b);
  });

  it('a listener that never sends on its own (like a peer of an earlier version) answers the probes of the streaming side: no fallback in 60 s', async () => {
    const { net, a, b, seen } = await connected(5_000, undefined, true);
    const stream = setInterval(() => void a.send('unreliable', 'state'), 1000 / 30);
    await vi.advanceTimersByTimeAsync(60_000);
    clearInterval(stream);
    expect(seen.map((s) => s.paths)).toEqual([[], []]);
    expect(seen.map((s) => s.disconnected)).toEqual([0, 0]);
    // A probes once it heard nothing for half of afterMs (checks every 1.25 s: every 3.75 s);
    // B answers each probe with an ack and sends nothing else; answers are not answered.
    const ab = kinds(net.wires[0]);
    const ba = kinds(net.wires[1]);
    expect(ab.probes).toBeGreaterThanOrEqual(12);
    expect(ab.probes).toBeLessThanOrEqual(30);
    expect(ab.acks).toBe(0);
    expect(ba).toEqual({ probes: 0, acks: ab.probes, data: 0 });
    await closeAll(a, b);
  });

  it('nobody sends: each side sends a keepalive per check and hears the other; no probe, no answer, no fallback in 60 s', async () => {
    const { net, a, b, seen } = await connected(1_000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(seen.map((s) => s.paths)).toEqual([[], []]);
    expect(seen.map((s) => s.disconnected)).toEqual([0, 0]);
    for (const wire of net.wires) {
      const k = kinds(wire);
      // One keepalive per 250 ms check.
      expect(k.probes).toBe(0);
      expect(k.data).toBe(0);
      expect(k.acks).toBeGreaterThanOrEqual(235);
      expect(k.acks).toBeLessThanOrEqual(241);
    }
    await closeAll(a, b);
  });

  it('a path that goes silent is still declared dead: fallback within fallback.afterMs plus one check', async () => {
    const { net, a, b, seen } = await connected(2_000);
    const stream = setInterval(() => void a.send('unreliable', 'state'), 1000 / 30);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(seen[0].paths).toEqual([]);
    net.cut = true;
    const cutAt = Date.now();
    let fellBackAt = 0;
    a.once('path-change', () => (fellBackAt = Date.now()));
    await vi.advanceTimersByTimeAsync(5_000);
    clearInterval(stream);
    expect(seen[0].paths).toEqual(['websocket']);
    expect(fellBackAt - cutAt).toBeGreaterThan(2_000);
    expect(fellBackAt - cutAt).toBeLessThanOrEqual(2_000 + 500 + 10);
    await closeAll(a, b);
  });

  it('a path whose sends throw is still declared dead: a keepalive that fails to go out does not stop the check', async () => {
    const { net, a, b, seen } = await connected(2_000);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(seen[0].paths).toEqual([]);
    // The transport is going away: nothing arrives, and every send (keepalives and probes
    // included) throws. Before the fix, ping() returning false reset the silence as if the
    // room had no reliable channel, and the path was never declared dead.
    net.cut = true;
    net.sendThrows = true;
    const cutAt = Date.now();
    let fellBackAt = 0;
    a.once('path-change', () => (fellBackAt = Date.now()));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(seen[0].paths).toEqual(['websocket']);
    expect(fellBackAt - cutAt).toBeGreaterThan(2_000);
    expect(fellBackAt - cutAt).toBeLessThanOrEqual(2_000 + 500 + 10);
    await closeAll(a, b);
  });

  it('a stalled process (no timer or message ran for 3x afterMs) does not declare a live path dead: the late check probes, the next one judges', async () => {
    const { a, b, seen } = await connected(2_000);
    const stream = setInterval(() => void a.send('unreliable', 'state'), 1000 / 30);
    await vi.advanceTimersByTimeAsync(5_000);
    // The clock jumps 6 s while nothing runs (a long task, a GC pause, a loaded CI machine):
    // timers fire as they would have, but Date.now() says 6 s passed in silence.
    vi.setSystemTime(Date.now() + 6_000);
    await vi.advanceTimersByTimeAsync(10_000);
    clearInterval(stream);
    // Before the guard, the first check after the stall found 6 s of silence and fell back.
    expect(seen.map((s) => s.paths)).toEqual([[], []]);
    expect(seen.map((s) => s.disconnected)).toEqual([0, 0]);
    expect(a.generation).toBe(0);
    await closeAll(a, b);
  });

  it('a process where every check runs late (a hidden tab, a loaded machine) still declares a silent path dead: a late check skips judging at most once in a row', async () => {
    const { net, a, b, seen } = await connected(2_000);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(seen[0].paths).toEqual([]);
    net.cut = true;
    // Each check (every 500 ms) now runs 1.5 s late: the clock moves on while no timer runs,
    // so every check finds more than two periods since the previous one. Before the fix each
    // of them probed instead of judging, and the path was never declared dead.
    let checks = 0;
    while (seen[0].paths.length === 0 && checks < 20) {
      vi.setSystemTime(Date.now() + 1_500);
      await vi.advanceTimersByTimeAsync(500);
      checks++;
    }
    expect(seen[0].paths).toEqual(['websocket']);
    // Silence passes afterMs by the second check; the next one may skip, the one after judges.
    expect(checks).toBeLessThanOrEqual(4);
    await closeAll(a, b);
  });

  it('a room whose channels are all unreliable has nothing to carry keepalives or answer probes: silence does not count as death', async () => {
    const channels = { reliable: { ordered: false, maxRetransmits: 0 } };
    const { net, a, b, seen } = await connected(1_000, channels);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(seen.map((s) => s.paths)).toEqual([[], []]);
    expect(seen.map((s) => s.disconnected)).toEqual([0, 0]);
    // Nothing was sent at all: a keepalive on an unreliable channel would reach the app as a message.
    expect(net.wires[0].frames.length + net.wires[1].frames.length).toBe(0);
    await closeAll(a, b);
  });
});

async function connected(afterMs: number, channels?: Record<string, ChannelOptions>, quietB = false): Promise<ReturnType<typeof pair>> {
  const p = pair(afterMs, channels, quietB);
  await vi.advanceTimersByTimeAsync(100);
  expect(p.a.connected && p.b.connected, 'fake connection did not open').toBe(true);
  return p;
}

async function closeAll(a: RemotePeer, b: RemotePeer): Promise<void> {
  await Promise.all([a.close(), b.close()]);
}
