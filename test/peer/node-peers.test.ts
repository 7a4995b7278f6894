import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import wrtc from '@roamhq/wrtc';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerError, type RtcRuntime, weriftRuntime } from '../../peer/node.js';
import { collect, PeerHarness, until, untilNoHandles, waitConnected } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
let h = new PeerHarness();
afterEach(async () => {
  await h.close();
  h = new PeerHarness();
});

describe('Node peers', () => {
  it('the two-peer example exchanges 1,000 messages per preset channel, reliable complete and in order', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['examples/node-two-peers.mjs'], { cwd: root });
    expect(stdout).toMatch(/connected in \d+ ms, path direct/);
    expect(stdout).toContain('reliable: 1000/1000 received, in order: true');
    const unreliable = Number(/unreliable: (\d+)\/1000/.exec(stdout)?.[1]);
    // Paced on loopback nothing needs dropping, but the channel may; it must deliver most.
    expect(unreliable).toBeGreaterThan(900);
  });

  it('three peers form a mesh and broadcast reaches everyone', async () => {
    const rooms = await h.mesh('mesh', 3);
    const inboxes = rooms.map((r) => collect(r, 'reliable'));
    for (const [i, r] of rooms.entries()) await r.broadcast('reliable', `hello from ${i}`);
    await Promise.all(rooms.map((r, i) => until(r, () => (inboxes[i] as unknown[]).length === 2)));
    expect(inboxes.map((m) => [...m].sort())).toEqual([
      ['hello from 1', 'hello from 2'],
      ['hello from 0', 'hello from 2'],
      ['hello from 0', 'hello from 1'],
    ]);
    for (const r of rooms) for (const p of r.peers.values()) expect(p.path).toBe('direct');
  });

  it('a peer leaving is seen by the others, and the mesh keeps working', async () => {
    const [a, b, c] = (await h.mesh('leave', 3)) as [import('../../peer/node.js').Room, import('../../peer/node.js').Room, import('../../peer/node.js').Room];
    const leftA = a.next('peer-left');
    const leftB = b.next('peer-left');
    await c.leave();
    const [[peerA, reasonA], [peerB]] = await Promise.all([leftA, leftB]);
    expect(peerA.id).toBe(c.id);
    expect(peerB.id).toBe(c.id);
    expect(reasonA).toBe('left');
    expect(a.peers.has(c.id)).toBe(false);
    const inbox = collect(a, 'reliable');
    await b.peers.get(a.id)?.send('reliable', 'still here');
    await until(a, () => inbox.length === 1);
    expect(inbox).toEqual(['still here']);
  });

  it('json channels carry values; latest mode delivers only newer state', async () => {
    const opts = { channels: { state: { ordered: false, maxRetransmits: 0, latest: true, json: true }, chat: { json: true } } };
    const [a, b] = await h.mesh('json', 2, opts);
    const state = collect(a!, 'state');
    const chat = collect(a!, 'chat');
    const toA = b!.peers.get(a!.id)!;
    for (let i = 0; i < 20; i++) await toA.send('state', { x: i, y: -i });
    await toA.send('chat', { text: 'hi', n: [1, 2] });
    await until(a!, () => chat.length === 1);
    expect(chat).toEqual([{ text: 'hi', n: [1, 2] }]);
    const xs = (state as { x: number }[]).map((s) => s.x);
    // Strictly increasing: nothing older than what was already delivered gets through.
    expect(xs.every((x, i) => i === 0 || x > (xs[i - 1] as number))).toBe(true);
    expect(xs.length).toBeGreaterThan(0);
  });

  it('refuses what it cannot send with stable error codes', async () => {
    const [a, b] = await h.mesh('errors', 2, { channels: { values: { json: true } } });
    const toA = b!.peers.get(a!.id)!;
    await expect(toA.send('nope', 'x')).rejects.toMatchObject({ code: 'unknown-channel' });
    await expect(toA.send('reliable', 'x'.repeat(300_000))).rejects.toMatchObject({ code: 'too-large' });
    await expect(toA.send('reliable', { an: 'object' })).rejects.toMatchObject({ code: 'bad-data' });
    await expect(toA.send('values', () => 1)).rejects.toMatchObject({ code: 'bad-data' });
    const err = await toA.send('reliable', new Uint8Array(300_000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeerError);
    await b!.leave();
    await expect(toA.send('reliable', 'late')).rejects.toMatchObject({ code: 'closed' });
  });

  it('binary messages arrive as Uint8Array', async () => {
    const [a, b] = await h.mesh('binary', 2);
    const inbox = collect(a!, 'reliable');
    await b!.peers.get(a!.id)!.send('reliable', new Uint8Array([1, 2, 3, 250]));
    await until(a!, () => inbox.length === 1);
    expect(inbox[0]).toBeInstanceOf(Uint8Array);
    expect([...(inbox[0] as Uint8Array)]).toEqual([1, 2, 3, 250]);
  });

  it('reliable sends past the queue cap reject with buffer-full instead of growing without bound', async () => {
    const [a, b] = await h.mesh('backpressure', 2, { flow: { maxQueuedBytes: 64 * 1024 } });
    const toA = b!.peers.get(a!.id)!;
    const inbox = collect(a!, 'reliable');
    const chunk = new Uint8Array(16 * 1024);
    const sends = Array.from({ length: 40 }, () => toA.send('reliable', chunk));
    const results = await Promise.allSettled(sends);
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected.length).toBeGreaterThan(0);
    for (const r of rejected) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'buffer-full' });
    // What was accepted arrives.
    const accepted = results.length - rejected.length;
    await until(a!, () => inbox.length === accepted);
  });

  it('recovers the connection on demand and keeps its channels (rebuild for werift)', async () => {
    const [a, b] = await h.mesh('restart', 2);
    const toA = b!.peers.get(a!.id)!;
    const gen = toA.generation;
    const inbox = collect(a!, 'reliable');
    const reconnected = b!.next('peer-connected');
    await toA.restartIce();
    await reconnected;
    expect(toA.generation).toBe(gen + 1);
    await toA.send('reliable', 'after');
    await until(a!, () => inbox.includes('after'));
  });

  it('other W3C runtimes plug in: @roamhq/wrtc with werift', async () => {
    const [a, b] = [await h.join('wrtc', { rtc: wrtc as unknown as RtcRuntime }), await h.join('wrtc', { rtc: weriftRuntime() })];
    await Promise.all([waitConnected(a, 1), waitConnected(b, 1)]);
    const inboxA = collect(a, 'reliable');
    const inboxB = collect(b, 'reliable');
    await b.peers.get(a.id)!.send('reliable', 'to libwebrtc');
    await a.peers.get(b.id)!.send('reliable', 'to werift');
    await until(a, () => inboxA.length === 1);
    await until(b, () => inboxB.length === 1);
    expect([inboxA[0], inboxB[0]]).toEqual(['to libwebrtc', 'to werift']);
    const stats = await a.peers.get(b.id)!.stats();
    expect(stats.path).toBe('direct');
    expect(stats.selectedPair?.local.type).toBe('host');
    expect(stats.bytesSent).toBeGreaterThan(0);
  });

  it('@roamhq/wrtc as shipped: a reliable transfer that fills the buffer keeps going (it never fires bufferedamountlow)', async () => {
    const flow = { highWaterMark: 64 * 1024, lowWaterMark: 16 * 1024 };
    const rtc = wrtc as unknown as RtcRuntime;
    const [a, b] = await h.mesh('wrtc-bulk', 2, { rtc, flow });
    const toA = b!.peers.get(a!.id)!;
    const inbox = collect(a!, 'reliable');
    const chunk = new Uint8Array(16 * 1024);
    // 8 MB: far past the 64 KiB high watermark, so most sends must wait for the buffer to drain.
    for (let i = 0; i < 512; i++) await toA.send('reliable', chunk);
    await until(a!, () => inbox.length === 512);
    expect((inbox as Uint8Array[]).every((m) => m.byteLength === chunk.byteLength)).toBe(true);
  });

  it('a sender that awaits each send never gets buffer-full, however much it sends (48 MiB over @roamhq/wrtc)', async () => {
    // Reliable messages are kept until acknowledged (for resending after a path switch):
    // what is written and unacknowledged is bounded by waiting, not by rejecting. Before
    // that, a fast runtime took data faster than acks came back and an awaited send
    // rejected with buffer-full once 8 MiB were unacknowledged.
    const [a, b] = await h.mesh('wrtc-window', 2, { rtc: wrtc as unknown as RtcRuntime });
    const toA = b!.peers.get(a!.id)!;
    let received = 0;
    a!.on('message', ({ channel }) => {
      if (channel === 'reliable') received++;
    });
    const chunk = new Uint8Array(16 * 1024);
    for (let i = 0; i < 3072; i++) await toA.send('reliable', chunk);
    await until(a!, () => received === 3072);
  }, 60_000);

  it('leave() releases every socket and timer', async () => {
    const [a, b] = await h.mesh('handles', 2);
    await Promise.all([a!.leave(), b!.leave(), a!.leave()]);
    await h.close();
    expect(await untilNoHandles()).toEqual([]);
  });
});
