/**
 * Per-peer fallback to the signaling WebSocket (`relay` frames) with real werift peers and a
 * real signaling server. ICE is made to fail by a runtime that withholds remote candidates while
 * its gate is closed (the NAT lab does it with real UDP blocking: test/nat/).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Room } from '../../peer/node.js';
import { joinRoom } from '../../peer/node.js';
import type { PeerPath } from '../../peer/stats.js';
import { listenSignaling } from '../../signaling/server/index.js';
import { collect, FAST, gatedRuntime, onlyPeer, PeerHarness, pathOf, pump, until, waitConnected } from './helpers.js';

const harness = new PeerHarness();
afterEach(() => harness.close());

describe('WebSocket fallback', () => {
  it('peers whose ICE never connects talk over the WebSocket with the same API', async () => {
    const gate = { open: false };
    const rtc = gatedRuntime(gate);
    const paths: PeerPath[] = [];
    const a = await harness.join('fb-never', { rtc, ...FAST });
    a.on('path-change', (_p, path) => paths.push(path));
    const b = await harness.join('fb-never', { rtc, ...FAST });
    await Promise.all([waitConnected(a, 1), waitConnected(b, 1)]);
    expect(onlyPeer(a).path).toBe('websocket');
    expect(onlyPeer(b).path).toBe('websocket');
    expect(paths).toEqual(['websocket']);
    expect((await onlyPeer(a).stats()).path).toBe('websocket');

    const reliable = collect(b, 'reliable');
    const unreliable = collect(b, 'unreliable');
    const big = new Uint8Array(40_000).map((_, i) => i % 251);
    for (let i = 0; i < 200; i++) await onlyPeer(a).send('reliable', `r${i}`);
    await onlyPeer(a).send('reliable', big);
    await onlyPeer(a).send('reliable', 'é'.repeat(9_000)); // 18 KB of UTF-8: fragments split characters
    for (let i = 0; i < 10; i++) await onlyPeer(a).send('unreliable', `u${i}`);
    await until(b, () => reliable.length === 202 && unreliable.length > 0);
    expect(reliable.slice(0, 200)).toEqual(Array.from({ length: 200 }, (_, i) => `r${i}`));
    expect(reliable[200]).toEqual(big);
    expect(reliable[201]).toBe('é'.repeat(9_000));
    expect(unreliable.every((u) => typeof u === 'string' && /^u\d$/.test(u))).toBe(true);
  });

  it('switches direct -> websocket -> direct while sending, losing and duplicating nothing', async () => {
    const gate = { open: true };
    const rtc = gatedRuntime(gate);
    const [a, b] = await harness.mesh('fb-both', 2, { rtc, ...FAST });
    await Promise.all([pathOf(a!, (p) => p === 'direct'), pathOf(b!, (p) => p === 'direct')]);
    const atB = collect(b!, 'reliable');
    const atA = collect(a!, 'reliable');
    const ab = pump(a!);
    const ba = pump(b!);
    await until(b!, () => atB.length > 50);

    // The path dies: the connection is rebuilt, and the new one cannot connect.
    gate.open = false;
    const toWs = Promise.all([pathOf(a!, (p) => p === 'websocket'), pathOf(b!, (p) => p === 'websocket')]);
    void onlyPeer(b!).restartIce();
    await toWs;
    const onWs = atB.length;
    await until(b!, () => atB.length > onWs + 50);

    // UDP is back: the background retries connect and both move back.
    gate.open = true;
    await Promise.all([pathOf(a!, (p) => p !== 'websocket'), pathOf(b!, (p) => p !== 'websocket')]);
    const back = atB.length;
    await until(b!, () => atB.length > back + 50);

    const [sentAB, sentBA] = await Promise.all([ab.stop(), ba.stop()]);
    await Promise.all([until(b!, () => atB.length >= sentAB), until(a!, () => atA.length >= sentBA)]);
    expect(atB).toEqual(Array.from({ length: sentAB }, (_, i) => `m${i}`));
    expect(atA).toEqual(Array.from({ length: sentBA }, (_, i) => `m${i}`));
    expect(onlyPeer(a!).path).toBe('direct');
  }, 40_000);

  it('with fallback: false a peer never sends over the relay, but receives what the other side relays', async () => {
    const gate = { open: false };
    const a = await harness.join('fb-off', { rtc: gatedRuntime(gate), ...FAST, fallback: false });
    const b = await harness.join('fb-off', { rtc: gatedRuntime(gate), ...FAST });
    // b falls back and tells a; a accepts relayed data but never sends over the relay itself.
    await waitConnected(b, 1);
    expect(onlyPeer(b).path).toBe('websocket');
    const got = collect(a, 'reliable');
    await onlyPeer(b).send('reliable', 'still delivered');
    await until(a, () => got.length === 1);
    expect(onlyPeer(a).path).not.toBe('websocket');
    expect(onlyPeer(a).connected).toBe(false);
  });

  it('never falls back when the server has relay disabled (welcome announces relayMessagesPerSecond 0)', async () => {
    const server = await listenSignaling({ port: 0, host: '127.0.0.1', logger: false, relay: false });
    const gate = { open: false };
    const rooms: Room[] = [];
    try {
      for (let i = 0; i < 2; i++) rooms.push(await joinRoom({ url: server.wsUrl, room: 'fb-disabled', rtc: gatedRuntime(gate), ...FAST }));
      const paths: PeerPath[] = [];
      for (const r of rooms) r.on('path-change', (_p, path) => paths.push(path));
      // A negative: nothing announces that a fallback did not happen, so wait well past
      // the point where it would have (fallback.afterMs is 400 ms).
      await new Promise((r) => setTimeout(r, 3 * FAST.fallback.afterMs));
      expect(paths).toEqual([]);
      for (const r of rooms) expect(onlyPeer(r).connected).toBe(false);
    } finally {
      await Promise.all(rooms.map((r) => r.leave()));
      await server.close();
    }
  });
});
