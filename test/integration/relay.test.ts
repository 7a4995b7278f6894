/**
 * Relay frames (the WebSocket data fallback) on a real server with raw clients: delivery with `from` stamped
 * and every field passed through, room isolation, errors, the relay rate limits apart from
 * the signaling bucket, resume grace, congestion (a recipient that stops reading) and
 * metrics. The SignalingClient side is in relay-client.test.ts.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../signaling/protocol/index.js';
import { InvalidOptionsError } from '../../signaling/server/index.js';
import { cleanup } from '../helpers/resources.js';
import { metricValue, startFakeClockServer, startServer, type TestServer } from '../helpers/server.js';
import type { FrameOf, TestClient } from '../helpers/ws-client.js';

afterEach(cleanup);

/** No heartbeat ticks while a test moves fake time. */
const NO_PING = { pingIntervalMs: 1e9 };

const relay = (to: string, channel: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ type: 'relay', to, channel, ...extra });

/** Sends and then waits until the server has handled everything this client sent. */
async function sendAll(client: TestClient, messages: unknown[]): Promise<void> {
  for (const m of messages) client.send(m);
  await client.sync();
}

/** The value of a metric sample, 0 when absent. */
async function metric(srv: TestServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await srv.scrape(), name, labels) ?? 0;
}

describe('relay: delivery', () => {
  it('delivers text and binary frames with from stamped and every field passed through, in order', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const bytes = Buffer.from([0, 1, 2, 250, 255]).toString('base64');
    await sendAll(a.client, [
      relay(b.id, 'reliable', { data: 'hello "world" \u00e9\u{1F600}', seq: 0, ack: 0xffffffff, more: true, ref: 'not relayed' }),
      relay(b.id, 'unreliable', { data: bytes, b64: true, seq: 7, unreliable: true }),
      // A forged `from` is ignored: the server stamps the sender itself. Unknown fields are dropped.
      relay(b.id, 'x.y_z-0', { from: 'somebody-else', extra: { evil: true } }),
      relay(b.id, 'reliable', { data: '', ack: 3 }),
    ]);
    await b.client.sync();
    expect(b.client.drain('relay')).toEqual([
      { type: 'relay', from: a.id, channel: 'reliable', data: 'hello "world" \u00e9\u{1F600}', seq: 0, ack: 0xffffffff, more: true },
      { type: 'relay', from: a.id, channel: 'unreliable', data: bytes, b64: true, seq: 7, unreliable: true },
      { type: 'relay', from: a.id, channel: 'x.y_z-0' },
      { type: 'relay', from: a.id, channel: 'reliable', data: '', ack: 3 },
    ]);
    // The exact bytes on the wire: known fields only, in a fixed order.
    const raw = new Promise<string>((resolve) => b.client.ws.once('message', (d) => resolve((d as Buffer).toString('utf8'))));
    a.client.send(relay(b.id, 'c', { unreliable: true, more: true, ack: 1, seq: 2, b64: true, data: 'AA==' }));
    expect(await raw).toBe(`{"type":"relay","from":${JSON.stringify(a.id)},"channel":"c","data":"AA==","b64":true,"seq":2,"ack":1,"more":true,"unreliable":true}`);
    expect(a.client.pending('error')).toEqual([]);
  });

  it('only within the room: another room is peer-not-found for reliable frames, a silent drop for unreliable ones; so is yourself', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const c = await srv.joined('other');
    expect(await a.client.expectError(relay(c.id, 'reliable', { data: 'x', ref: 'r1' }))).toMatchObject({ code: 'peer-not-found', ref: 'r1' });
    expect(await a.client.expectError(relay(a.id, 'reliable', { ref: 'r2' }))).toMatchObject({ code: 'peer-not-found', ref: 'r2' });
    expect(await a.client.expectError(relay('nobody', 'reliable', { ref: 'r3' }))).toMatchObject({ code: 'peer-not-found', ref: 'r3' });
    await sendAll(a.client, [relay(c.id, 'u', { unreliable: true }), relay(a.id, 'u', { unreliable: true }), relay('nobody', 'u', { unreliable: true })]);
    expect(a.client.pending('error')).toEqual([]);
    await c.client.sync();
    await b.client.sync();
    expect(c.client.pending('relay')).toEqual([]);
    expect(b.client.pending('relay')).toEqual([]);
    expect(await metric(srv, 'rallypoint_relay_dropped_total', { reason: 'no-peer' })).toBe(6);
    expect(await metric(srv, 'rallypoint_errors_total', { code: 'peer-not-found' })).toBe(3);
  });

  it('invalid relay frames are bad-message with their ref, and the frame is not relayed', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const bad = [
      relay(b.id, 'no spaces'),
      relay(b.id, ''),
      relay(b.id, 'c'.repeat(65)),
      relay(b.id, 'c', { data: { not: 'a string' } }),
      relay(b.id, 'c', { seq: -1 }),
      relay(b.id, 'c', { ack: 2 ** 32 }),
      relay(b.id, 'c', { seq: 1.5 }),
      relay(b.id, 'c', { unreliable: false }),
      relay(b.id, 'c', { b64: 'yes' }),
      { type: 'relay', channel: 'c' },
    ];
    for (const [i, m] of bad.entries()) expect(await a.client.expectError({ ...m, ref: `bad-${i}` }), JSON.stringify(m)).toMatchObject({ code: 'bad-message', ref: `bad-${i}` });
    await b.client.sync();
    expect(b.client.pending('relay')).toEqual([]);
  });

  it('before join: not-joined for reliable and unreliable frames alike', async () => {
    const srv = await startServer();
    const c = await srv.connect();
    expect(await c.expectError(relay('x', 'c', { ref: 'a' }))).toMatchObject({ code: 'not-joined', ref: 'a' });
    expect(await c.expectError(relay('x', 'c', { unreliable: true, ref: 'b' }))).toMatchObject({ code: 'not-joined', ref: 'b' });
  });
});

describe('relay: disabled by configuration', () => {
  // `relay` is the deprecated name of `dataFallback`: both switch the same thing off.
  it.each([{ dataFallback: false }, { relay: false }])(
    '%o announces relay limits of 0, answers reliable frames with relay-disabled and unreliable ones once per connection; signals still work',
    async (off) => {
      const srv = await startServer(off);
      const a = await srv.connect();
      const welcome = await a.join('r');
      expect(welcome.limits).toMatchObject({ relayMessagesPerSecond: 0, relayMessageBurst: 0, relayBytesPerSecond: 0, relayBytesBurst: 0 });
      const b = await srv.joined('r');
      // Unreliable first: told once, then silence.
      await sendAll(a, [relay(b.id, 'u', { unreliable: true, ref: 'u1' }), relay(b.id, 'u', { unreliable: true }), relay(b.id, 'u', { unreliable: true })]);
      expect(a.drain('error')).toEqual([{ type: 'error', code: 'relay-disabled', message: expect.stringMatching(/disabled/), ref: 'u1' }]);
      // Reliable frames are told every time (a single one never closes the connection).
      await sendAll(a, [relay(b.id, 'r', { ref: 'r1' }), relay(b.id, 'r', { ref: 'r2' })]);
      expect(a.drain('error').map((e) => [e.code, e.ref])).toEqual([
        ['relay-disabled', 'r1'],
        ['relay-disabled', 'r2'],
      ]);
      a.send({ type: 'signal', to: b.id, data: 'still signaling' });
      expect((await b.client.next('signal')).data).toBe('still signaling');
      await b.client.sync();
      expect(b.client.pending('relay')).toEqual([]);
      expect(a.closeInfo).toBeNull();
      expect(await metric(srv, 'rallypoint_relay_dropped_total', { reason: 'disabled' })).toBe(5);
      expect(await metric(srv, 'rallypoint_relay_messages_total', { kind: 'reliable' })).toBe(0);
    },
  );

  it('the same value under both names is fine, contradicting ones are refused', async () => {
    expect((await startServer({ dataFallback: false, relay: false })).server.options.dataFallback).toBe(false);
    expect((await startServer({ relay: false })).server.options).toMatchObject({ dataFallback: false, relay: false });
    expect((await startServer({})).server.options).toMatchObject({ dataFallback: true, relay: true });
    await expect(startServer({ dataFallback: true, relay: false })).rejects.toMatchObject({ name: 'InvalidOptionsError', code: 'invalid-options', message: /old name of dataFallback/ });
  });

  it('the welcome of a server with relay on carries the relay limits in force', async () => {
    const srv = await startServer({ limits: { relayMessagesPerSecond: 10, relayBytesBurst: 20_000 } });
    const w = await (await srv.connect()).join('r');
    expect(w.limits).toMatchObject({
      relayMessagesPerSecond: 10,
      relayMessageBurst: DEFAULT_LIMITS.relayMessageBurst,
      relayBytesPerSecond: DEFAULT_LIMITS.relayBytesPerSecond,
      relayBytesBurst: 20_000,
    });
  });

  it('refuses contradictory relay limits at construction', async () => {
    await expect(startServer({ limits: { relayBytesBurst: 1000 } })).rejects.toThrow(InvalidOptionsError);
    await expect(startServer({ limits: { relayLatestAboveBytes: 2_000_000 } })).rejects.toThrow(/relayLatestAboveBytes/);
    await expect(startServer({ limits: { relayMessagesPerSecond: 0 } })).rejects.toThrow(/relayMessagesPerSecond/);
  });
});

describe('relay: rate limits', () => {
  it('a bucket of its own: over relayMessageBurst reliable frames get rate-limited, unreliable ones vanish, and the signaling bucket is untouched', async () => {
    const srv = await startFakeClockServer({ limits: { ...NO_PING, relayMessageBurst: 5, relayMessagesPerSecond: 2, messageBurst: 3, messagesPerSecond: 1, abuseThreshold: 100 } });
    const a = await srv.joined('r'); // one signaling token
    const b = await srv.joined('r');
    const frames = Array.from({ length: 5 }, (_, i) => relay(b.id, 'c', { seq: i }));
    await sendAll(a.client, [...frames, relay(b.id, 'c', { seq: 5, ref: 'over' }), relay(b.id, 'u', { seq: 6, unreliable: true })]);
    expect(a.client.drain('error').map((e) => [e.code, e.ref])).toEqual([['rate-limited', 'over']]);
    await b.client.sync();
    expect(b.client.drain('relay').map((m) => m.seq)).toEqual([0, 1, 2, 3, 4]);
    // The two signaling tokens left after the join are still there: relay frames took none.
    await sendAll(a.client, [
      { type: 'signal', to: b.id, data: 1 },
      { type: 'signal', to: b.id, data: 2 },
      { type: 'signal', to: b.id, data: 3 },
    ]);
    expect(a.client.drain('error').map((e) => e.code)).toEqual(['rate-limited']);
    await b.client.sync();
    expect(b.client.drain('signal').map((m) => m.data)).toEqual([1, 2]);
    // ...and signals took no relay token: half a second later one (2/s) is back.
    srv.clock.advance(500);
    await sendAll(a.client, [relay(b.id, 'c', { seq: 7 }), relay(b.id, 'u', { seq: 8, unreliable: true })]);
    expect(a.client.pending('error')).toEqual([]);
    await b.client.sync();
    expect(b.client.drain('relay').map((m) => m.seq)).toEqual([7]);
    const text = await srv.scrape();
    expect(metricValue(text, 'rallypoint_relay_dropped_total', { reason: 'rate' })).toBe(3);
    expect(metricValue(text, 'rallypoint_relay_messages_total', { kind: 'reliable' })).toBe(6);
    expect(metricValue(text, 'rallypoint_errors_total', { code: 'rate-limited' })).toBe(2);
  });

  it('and a byte bucket: frames are charged their size, a refused frame costs nothing', async () => {
    const srv = await startFakeClockServer({ limits: { ...NO_PING, relayBytesBurst: 20_000, relayBytesPerSecond: 1_000, relayMessageBurst: 3, relayMessagesPerSecond: 1 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const big = 'x'.repeat(8_000);
    // 2 x ~8 KB pass, the third does not fit in what is left of 20,000 bytes.
    await sendAll(a.client, [relay(b.id, 'c', { seq: 0, data: big }), relay(b.id, 'c', { seq: 1, data: big }), relay(b.id, 'c', { seq: 2, data: big, ref: 'big' })]);
    expect(a.client.drain('error').map((e) => [e.code, e.ref])).toEqual([['rate-limited', 'big']]);
    // A small frame still fits: the refused one took neither bytes nor its message token.
    await sendAll(a.client, [relay(b.id, 'c', { seq: 3, data: 'small' })]);
    expect(a.client.pending('error')).toEqual([]);
    await b.client.sync();
    expect(b.client.drain('relay').map((m) => m.seq)).toEqual([0, 1, 3]);
    const sizes =
      [0, 1].map((seq) => Buffer.byteLength(JSON.stringify(relay(b.id, 'c', { seq, data: big })))).reduce((x, y) => x + y, 0) +
      Buffer.byteLength(JSON.stringify(relay(b.id, 'c', { seq: 3, data: 'small' })));
    expect(await metric(srv, 'rallypoint_relay_bytes_total')).toBe(sizes);
  });

  it('rate-limited relay frames count strikes like any other: a flood of reliable ones closes with 4029', async () => {
    const srv = await startFakeClockServer({ limits: { ...NO_PING, relayMessageBurst: 2, relayMessagesPerSecond: 1, abuseThreshold: 3 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    for (let i = 0; i < 10; i++) a.client.send(relay(b.id, 'c', { seq: i }));
    expect((await a.client.closed).code).toBe(4029);
  });

  it('a flood of unreliable frames over the limit is dropped silently and never closes the connection', async () => {
    const srv = await startFakeClockServer({ limits: { ...NO_PING, relayMessageBurst: 2, relayMessagesPerSecond: 1, abuseThreshold: 3 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await sendAll(
      a.client,
      Array.from({ length: 50 }, (_, i) => relay(b.id, 'u', { seq: i, unreliable: true })),
    );
    expect(a.client.pending('error')).toEqual([]);
    expect(a.client.closeInfo).toBeNull();
    await b.client.sync();
    expect(b.client.drain('relay').map((m) => m.seq)).toEqual([0, 1]);
    expect(await metric(srv, 'rallypoint_relay_dropped_total', { reason: 'rate' })).toBe(48);
  });
});

describe('relay: resume grace', () => {
  it('a recipient in its grace period gets its reliable frames (bounded queue) when it resumes, never the unreliable ones', async () => {
    const srv = await startServer({ limits: { resumeQueueLength: 3 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await b.client.terminate();
    await srv.logs.closed(b.id);
    // Relay into the grace period (a sees nothing of it).
    await sendAll(a.client, [
      relay(b.id, 'c', { seq: 0 }),
      relay(b.id, 'u', { seq: 1, unreliable: true }),
      { type: 'signal', to: b.id, data: 'sdp' },
      relay(b.id, 'c', { seq: 2 }),
      relay(b.id, 'c', { seq: 3 }), // beyond the queue of 3
    ]);
    expect(a.client.pending('error')).toEqual([]);
    const back = await srv.connect();
    const w = await back.join('r', { resume: b.token });
    expect(w).toMatchObject({ id: b.id, resumed: true });
    await back.sync();
    expect(back.received.filter((m) => m.type === 'relay' || m.type === 'signal').map((m) => (m.type === 'relay' ? m.seq : m.data))).toEqual([0, 'sdp', 2]);
    expect(await metric(srv, 'rallypoint_relay_dropped_total', { reason: 'grace' })).toBe(2);
  });
});

/** The server-side socket buffer of a reader that stopped, from /metrics. */
async function backlog(srv: TestServer): Promise<{ buffered: number; held: number; congested: number }> {
  const text = await srv.scrape();
  return {
    buffered: metricValue(text, 'rallypoint_send_buffered_bytes') ?? 0,
    held: metricValue(text, 'rallypoint_relay_held_frames') ?? 0,
    congested: metricValue(text, 'rallypoint_relay_dropped_total', { reason: 'congested' }) ?? 0,
  };
}

/** Stops reading from the socket (the kernel's buffers fill, then the server's). */
function stopReading(client: TestClient): () => void {
  const socket = (client.ws as unknown as { _socket: Socket })._socket;
  socket.pause();
  return () => socket.resume();
}

describe('relay: a recipient that does not read', () => {
  // High relay limits: the kernel's socket buffers take megabytes before the server's fills.
  const OPEN_LIMITS = { relayMessageBurst: 1e9, relayMessagesPerSecond: 1e9, relayBytesBurst: 1e12, relayBytesPerSecond: 1e12 };
  const PAD = 'p'.repeat(15_000);

  /** Sends unreliable `fill` frames until the server holds one for b (its buffer passed relayLatestAboveBytes). */
  async function congest(srv: TestServer, a: TestClient, to: string): Promise<number> {
    let seq = 0;
    for (let round = 0; round < 400; round++) {
      await sendAll(
        a,
        Array.from({ length: 32 }, () => relay(to, 'fill', { seq: seq++, data: PAD, unreliable: true })),
      );
      if ((await backlog(srv)).held > 0) return seq;
    }
    throw new Error(`the server never held a frame after ${seq} frames`);
  }

  it('unreliable frames: only the newest per sender and channel is kept, at most relayLatestSlots, and written when it reads again', async () => {
    const srv = await startServer({ limits: OPEN_LIMITS });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const resume = stopReading(b.client);
    const fills = await congest(srv, a.client, b.id);
    const before = await backlog(srv);
    // The server's own buffer stays near the threshold: what did not fit is held, not written.
    expect(before.buffered).toBeGreaterThan(DEFAULT_LIMITS.relayLatestAboveBytes);
    expect(before.buffered).toBeLessThanOrEqual(DEFAULT_LIMITS.relayLatestAboveBytes + DEFAULT_LIMITS.maxMessageBytes);

    // 100 positions and velocities, then 100 other channels: all held, newest only, 64 slots.
    const frames: unknown[] = [];
    for (let i = 0; i < 100; i++) frames.push(relay(b.id, 'pos', { seq: i, data: `p${i}`, unreliable: true }), relay(b.id, 'vel', { seq: i, data: `v${i}`, unreliable: true }));
    for (let i = 0; i < 100; i++) frames.push(relay(b.id, `c${i}`, { seq: i, unreliable: true }));
    await sendAll(a.client, frames);
    const during = await backlog(srv);
    expect(during.held).toBe(DEFAULT_LIMITS.relayLatestSlots);
    expect(during.buffered).toBeLessThanOrEqual(before.buffered);
    // Replaced: 99 pos, 99 vel; no slot for 100 - 61 channels; plus the fill frames replaced in their slot.
    expect(during.congested - before.congested).toBe(99 + 99 + 39);
    expect(a.client.pending('error')).toEqual([]);

    resume();
    // Everything arrives: wait for the newest of both channels (written at the drain).
    const got = new Map<string, number[]>();
    const seen = (ch: string): number[] => got.get(ch) ?? [];
    while (!(seen('pos').includes(99) && seen('vel').includes(99) && seen('c60').length > 0 && seen('fill').includes(fills - 1))) {
      const m = await b.client.next('relay');
      got.set(m.channel, [...seen(m.channel), m.seq ?? -1]);
    }
    await b.client.sync();
    for (const m of b.client.drain('relay')) got.set(m.channel, [...seen(m.channel), m.seq ?? -1]);
    expect(seen('pos')).toEqual([99]);
    expect(seen('vel')).toEqual([99]);
    for (let i = 0; i < 100; i++) expect(seen(`c${i}`), `c${i}`).toEqual(i < 61 ? [i] : []);
    // Fill frames: never an older one after a newer one, and the newest last.
    const fill = seen('fill');
    expect(fill).toEqual([...fill].sort((x, y) => x - y));
    expect(new Set(fill).size).toBe(fill.length);
    expect(fill.at(-1)).toBe(fills - 1);
    expect((await backlog(srv)).held).toBe(0);

    // Drained: frames go straight through again.
    a.client.send(relay(b.id, 'pos', { seq: 100, unreliable: true }));
    expect((await b.client.next('relay')).seq).toBe(100);
  });

  it('reliable frames are dropped above relayMaxBufferedBytes: the server buffers at most that much, and what it kept arrives in order', async () => {
    const srv = await startServer({ limits: { ...OPEN_LIMITS, relayMaxBufferedBytes: 256 * 1024 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const resume = stopReading(b.client);
    await congest(srv, a.client, b.id);
    // Reliable frames are written past relayLatestAboveBytes, up to relayMaxBufferedBytes.
    let seq = 0;
    let state = await backlog(srv);
    const congestedBefore = state.congested;
    for (let round = 0; round < 20 && state.congested === congestedBefore; round++) {
      await sendAll(
        a.client,
        Array.from({ length: 16 }, () => relay(b.id, 'rel', { seq: seq++, data: PAD })),
      );
      state = await backlog(srv);
    }
    expect(state.congested).toBeGreaterThan(congestedBefore);
    // More of them change nothing: dropped, memory flat.
    await sendAll(
      a.client,
      Array.from({ length: 64 }, () => relay(b.id, 'rel', { seq: seq++, data: PAD })),
    );
    const after = await backlog(srv);
    expect(after.buffered).toBeGreaterThan(256 * 1024 - DEFAULT_LIMITS.maxMessageBytes);
    expect(after.buffered).toBeLessThanOrEqual(256 * 1024 + DEFAULT_LIMITS.maxMessageBytes);
    expect(after.congested - state.congested).toBe(64);
    // The sender is not told (the peer library retransmits what is not acknowledged).
    expect(a.client.pending('error')).toEqual([]);

    resume();
    // The pong comes after everything the server had buffered for b.
    await b.client.sync();
    const kept = b.client
      .drain('relay')
      .filter((m) => m.channel === 'rel')
      .map((m) => m.seq);
    // A contiguous prefix: the buffer never drained while b was not reading.
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => i));
    expect(kept.length).toBeLessThan(seq);
    expect(kept.length).toBeGreaterThan(0);
    // Drained: reliable frames pass again.
    a.client.send(relay(b.id, 'rel', { seq, data: 'after the drain' }));
    let last: FrameOf<'relay'>;
    do last = await b.client.next('relay');
    while (last.channel !== 'rel');
    expect(last).toMatchObject({ seq, data: 'after the drain' });
  });
});

describe('relay: metrics', () => {
  it('counts relayed messages by kind and their bytes; messages_total has the relay type', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const frames = [relay(b.id, 'c', { data: 'one' }), relay(b.id, 'c', { data: 'two', seq: 1 }), relay(b.id, 'u', { unreliable: true, data: 'AAAA', b64: true })];
    await sendAll(a.client, frames);
    const text = await srv.scrape();
    expect(metricValue(text, 'rallypoint_relay_messages_total', { kind: 'reliable' })).toBe(2);
    expect(metricValue(text, 'rallypoint_relay_messages_total', { kind: 'unreliable' })).toBe(1);
    expect(metricValue(text, 'rallypoint_relay_bytes_total')).toBe(frames.reduce<number>((n, f) => n + Buffer.byteLength(JSON.stringify(f)), 0));
    expect(metricValue(text, 'rallypoint_messages_total', { type: 'relay' })).toBe(3);
    for (const reason of ['rate', 'congested', 'no-peer', 'grace', 'disabled']) expect(metricValue(text, 'rallypoint_relay_dropped_total', { reason }), reason).toBe(0);
    expect(metricValue(text, 'rallypoint_relay_held_frames')).toBe(0);
    expect(metricValue(text, 'rallypoint_send_buffered_bytes')).toBe(0);
  });
});
