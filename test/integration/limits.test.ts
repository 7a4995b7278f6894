import { afterEach, describe, expect, it } from 'vitest';
import { CLOSE_CODES, type PeerInfo } from '../../signaling/protocol/index.js';
import { InvalidOptionsError, type JoinOutcome, listenSignaling, MemoryRoomStore, type Sink } from '../../signaling/server/index.js';
import { resolveOptions } from '../../signaling/server/options.js';
import { cleanup } from '../helpers/resources.js';
import { metricValue, startFakeClockServer, type TestServer } from '../helpers/server.js';
import type { TestClient } from '../helpers/ws-client.js';

afterEach(cleanup);

class ThrowingStore extends MemoryRoomStore {
  override join(_room: string, _peer: PeerInfo, _sink: Sink): JoinOutcome {
    throw new Error('store is down');
  }
}

/**
 * Sends `abuse` `times` times in one go and waits for the server to close the connection;
 * returns the error codes received before the close and the close code.
 */
async function abuseUntilClosed(client: TestClient, abuse: () => void, times: number): Promise<{ errors: string[]; code: number }> {
  for (let i = 0; i < times; i++) abuse();
  const { code } = await client.closed;
  const errors = client.drain('error').map((m) => m.code);
  return { errors, code };
}

/** No heartbeat ticks while a test moves fake time. */
const NO_PING = { pingIntervalMs: 1e9 };

describe('limits: rate limit', () => {
  it('accepts a burst of messageBurst, drops the rest with rate-limited, and refills at messagesPerSecond', async () => {
    const srv = await startFakeClockServer({ limits: { ...NO_PING, messageBurst: 4, messagesPerSecond: 2, abuseThreshold: 100 } });
    const a = await srv.joined('r'); // 1 token
    const b = await srv.joined('r');
    for (let i = 0; i < 5; i++) a.client.send({ type: 'signal', to: b.id, data: i });
    // 3 tokens left after the join: signals 0-2 pass, 3-4 are dropped.
    for (let i = 0; i < 3; i++) expect((await b.client.next('signal')).data).toBe(i);
    expect((await a.client.next('error')).code).toBe('rate-limited');
    expect((await a.client.next('error')).code).toBe('rate-limited');
    await b.client.sync();
    expect(b.client.pending('signal')).toEqual([]);

    // Half a second later one token (2/s) is back: exactly one more message passes.
    srv.clock.advance(500);
    a.client.send({ type: 'signal', to: b.id, data: 'refilled' });
    a.client.send({ type: 'signal', to: b.id, data: 'too soon' });
    expect((await b.client.next('signal')).data).toBe('refilled');
    expect((await a.client.next('error')).code).toBe('rate-limited');

    // The bucket never holds more than the burst, however long the pause.
    srv.clock.advance(60_000);
    for (let i = 0; i < 6; i++) a.client.send({ type: 'signal', to: b.id, data: `late-${i}` });
    for (let i = 0; i < 4; i++) expect((await b.client.next('signal')).data).toBe(`late-${i}`);
    expect((await a.client.next('error')).code).toBe('rate-limited');
    expect((await a.client.next('error')).code).toBe('rate-limited');
    expect(metricValue(await srv.scrape(), 'rallypoint_errors_total', { code: 'rate-limited' })).toBe(5);
  });

  it('rate-limits each connection separately: a flooder does not slow down a well-behaved pair, which keeps relaying after it is closed', async () => {
    const srv = await startFakeClockServer({ limits: { messageBurst: 6, messagesPerSecond: 1, abuseThreshold: 3 } });
    const good1 = await srv.joined('r');
    const good2 = await srv.joined('r');
    const abuser = await srv.joined('r');

    // The abuser spends its bucket on good1, then floods on.
    const { errors, code } = await abuseUntilClosed(abuser.client, () => abuser.client.send({ type: 'signal', to: good1.id, data: 'spam' }), 20);
    expect(code).toBe(CLOSE_CODES.rateLimited);
    // 5 tokens after its join went through; then 4 rate-limited errors, the 4th crossing abuseThreshold 3.
    expect(errors).toEqual(['rate-limited', 'rate-limited', 'rate-limited', 'rate-limited']);
    await good1.client.sync();
    expect(good1.client.drain('signal').map((m) => m.data)).toEqual(Array(5).fill('spam'));

    // The pair's own buckets are untouched (fake time has not moved).
    for (let i = 0; i < 5; i++) {
      good1.client.send({ type: 'signal', to: good2.id, data: `ping-${i}` });
      expect(await good2.client.next('signal')).toMatchObject({ from: good1.id, data: `ping-${i}` });
    }
    good2.client.send({ type: 'signal', to: good1.id, data: 'pong' });
    expect(await good1.client.next('signal')).toMatchObject({ from: good2.id, data: 'pong' });
    expect(good1.client.pending('error')).toEqual([]);
    expect(good2.client.pending('error')).toEqual([]);
    expect(good1.client.closeInfo).toBeNull();
    expect(good2.client.closeInfo).toBeNull();
  });
});

describe('limits: repeated errors close the connection with the code of the last error', () => {
  const threshold = 2;

  const cases: { name: string; code: number; error: string; options?: object; setup?: (c: TestClient, srv: TestServer) => Promise<void>; abuse: (c: TestClient) => void }[] = [
    { name: 'bad-json', code: 4000, error: 'bad-json', abuse: (c) => c.sendRaw('nope') },
    { name: 'bad-message', code: 4001, error: 'bad-message', abuse: (c) => c.send({ type: 'join', room: '' }) },
    { name: 'binary frames', code: 4001, error: 'bad-message', abuse: (c) => c.sendRaw(Buffer.from([1, 2, 3]), true) },
    { name: 'not-joined', code: 4002, error: 'not-joined', abuse: (c) => c.send({ type: 'leave' }) },
    {
      name: 'peer-not-found',
      code: 4002,
      error: 'peer-not-found',
      setup: async (c) => void (await c.join('r')),
      abuse: (c) => c.send({ type: 'signal', to: 'ghost', data: 1 }),
    },
    {
      name: 'already-joined',
      code: 4002,
      error: 'already-joined',
      setup: async (c) => void (await c.join('r')),
      abuse: (c) => c.send({ type: 'join', room: 'r' }),
    },
    {
      name: 'room-full',
      code: 4002,
      error: 'room-full',
      options: { limits: { maxPeersPerRoom: 1 } },
      setup: async (_c, srv) => void (await srv.joined('full')),
      abuse: (c) => c.send({ type: 'join', room: 'full' }),
    },
    { name: 'too-large', code: 4009, error: 'too-large', options: { limits: { maxMessageBytes: 64 } }, abuse: (c) => c.sendRaw(`"${'x'.repeat(100)}"`) },
    {
      name: 'too-large meta',
      code: 4009,
      error: 'too-large',
      options: { limits: { maxMetaBytes: 16 } },
      abuse: (c) => c.send({ type: 'join', room: 'r', meta: { big: 'x'.repeat(32) } }),
    },
    {
      name: 'rate-limited',
      code: 4029,
      error: 'rate-limited',
      options: { limits: { messageBurst: 1, messagesPerSecond: 1 } },
      setup: async (c) => void (await c.join('r')),
      abuse: (c) => c.send({ type: 'leave' }),
    },
    {
      name: 'internal',
      code: 1011,
      error: 'internal',
      options: { store: new ThrowingStore({ maxPeersPerRoom: 8, maxRooms: 8 }) },
      abuse: (c) => c.send({ type: 'join', room: 'r' }),
    },
  ];

  it.each(cases)('$name: $code after abuseThreshold + 1 errors', async ({ code, error, options, setup, abuse }) => {
    const base = (options ?? {}) as { limits?: object };
    const srv = await startFakeClockServer({ ...base, limits: { ...base.limits, abuseThreshold: threshold } });
    const c = await srv.connect();
    await setup?.(c, srv);
    const result = await abuseUntilClosed(c, () => abuse(c), 10);
    expect(result.code).toBe(code);
    expect(result.errors).toEqual(Array(threshold + 1).fill(error));
    expect(metricValue(await srv.scrape(), 'rallypoint_closes_total', { code: String(code) })).toBe(1);
  });

  it('forgives errors spread out in time (strikes decay at one per second)', async () => {
    // Ten seconds out of a room: past the join deadline's default, which this test is not about.
    const srv = await startFakeClockServer({ limits: { ...NO_PING, abuseThreshold: 2, joinTimeoutMs: 60_000 } });
    const c = await srv.connect();
    for (let i = 0; i < 10; i++) {
      expect((await c.expectError({ type: 'leave' })).code).toBe('not-joined');
      srv.clock.advance(1_000);
    }
    expect(c.closeInfo).toBeNull();
    // ... but not a quick burst of them.
    const { code } = await abuseUntilClosed(c, () => c.send({ type: 'leave' }), 10);
    expect(code).toBe(CLOSE_CODES.protocolAbuse);
  });

  it('closes with 4003 on the first unauthorized join (no threshold)', async () => {
    const srv = await startFakeClockServer({ verify: () => ({ room: 'allowed' }), limits: { abuseThreshold: 100 } });
    const c = await srv.connect();
    const { errors, code } = await abuseUntilClosed(c, () => c.send({ type: 'join', room: 'forbidden' }), 5);
    expect(errors).toEqual(['unauthorized']);
    expect(code).toBe(CLOSE_CODES.unauthorized);
  });

  it('keeps strikes per connection: an abuser being closed does not close its room mates', async () => {
    const srv = await startFakeClockServer({ limits: { abuseThreshold: 2 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const abuser = await srv.joined('r');
    // a makes two mistakes too: still under the threshold.
    expect((await a.client.expectError({ type: 'signal', to: 'ghost', data: 0 })).code).toBe('peer-not-found');
    expect((await a.client.expectError({ type: 'signal', to: 'ghost', data: 0 })).code).toBe('peer-not-found');
    const { code } = await abuseUntilClosed(abuser.client, () => abuser.client.sendRaw('{'), 10);
    expect(code).toBe(CLOSE_CODES.badJson);
    a.client.send({ type: 'signal', to: b.id, data: 'fine' });
    expect((await b.client.next('signal')).data).toBe('fine');
    expect(a.client.closeInfo).toBeNull();
  });
});

describe('limits: frame size', () => {
  it('closes with 1009 on a frame over maxFrameBytes; a message between the two limits only gets too-large', async () => {
    const srv = await startFakeClockServer({ limits: { maxMessageBytes: 512, maxFrameBytes: 1024 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');

    a.client.sendRaw(JSON.stringify({ type: 'signal', to: b.id, data: 'x'.repeat(700) }));
    expect((await a.client.next('error')).code).toBe('too-large');
    expect(a.client.closeInfo).toBeNull();

    a.client.sendRaw(JSON.stringify({ type: 'signal', to: b.id, data: 'x'.repeat(2000) }));
    expect((await a.client.closed).code).toBe(CLOSE_CODES.frameTooLarge);
    await b.client.sync();
    expect(b.client.pending('signal')).toEqual([]);
    // The server's log and metrics record the 1009 it sent, not a 1006.
    expect(await srv.logs.closed(a.id)).toMatchObject({ code: 1009 });
    expect(metricValue(await srv.scrape(), 'rallypoint_closes_total', { code: '1009' })).toBe(1);
    // Its room mate is unaffected.
    const c = await srv.joined('r');
    b.client.send({ type: 'signal', to: c.id, data: 'ok' });
    expect((await c.client.next('signal')).data).toBe('ok');
  });
});

describe('limits: options', () => {
  it('refuses nonsensical limits at construction with InvalidOptionsError', async () => {
    await expect(listenSignaling({ port: 0, host: '127.0.0.1', logger: false, limits: { maxMessageBytes: 2048, maxFrameBytes: 1024 } })).rejects.toThrow(InvalidOptionsError);
    await expect(listenSignaling({ port: 0, host: '127.0.0.1', logger: false, limits: { messageBurst: 0 } })).rejects.toThrow(/messageBurst/);
    await expect(listenSignaling({ port: 0, host: '127.0.0.1', logger: false, limits: { noSuchLimit: 1 } as object })).rejects.toThrow(InvalidOptionsError);
    await expect(listenSignaling({ port: 0, host: '127.0.0.1', logger: false, secret: 'short' })).rejects.toThrow(/secret/);
    await expect(listenSignaling({ port: 0, host: '127.0.0.1', logger: false, allowedOrigins: ['https://x.example/path'] })).rejects.toThrow(/allowedOrigins/);
  });

  it('refuses a maxBufferedBytes that relay congestion or a resume would trip, and bad new settings', async () => {
    const start = (options: Parameters<typeof listenSignaling>[0]): Promise<unknown> => listenSignaling({ port: 0, host: '127.0.0.1', logger: false, ...options });
    await expect(start({ limits: { maxBufferedBytes: 1024 * 1024 } })).rejects.toThrow(/maxBufferedBytes.*relayMaxBufferedBytes/);
    await expect(start({ limits: { maxBufferedBytes: 2 * 1024 * 1024, resumeQueueLength: 100 } })).rejects.toThrow(/maxBufferedBytes.*resumeQueueLength/);
    await expect(start({ limits: { ipv6PrefixLength: 129 } })).rejects.toThrow(/ipv6PrefixLength/);
    await expect(start({ limits: { joinTimeoutMs: 0 } })).rejects.toThrow(/joinTimeoutMs/);
    await expect(start({ trustProxy: ['10.0.0.0/40'] })).rejects.toThrow(/trustProxy/);
    await expect(start({ trustProxy: -1 })).rejects.toThrow(/trustProxy/);
  });

  it('refuses a slowReaderCloseMs that is not below resumeGraceMs (a terminated slow reader could never resume), unless resume is off', () => {
    expect(() => resolveOptions({ limits: { slowReaderCloseMs: 10_000, resumeGraceMs: 10_000 } })).toThrow(InvalidOptionsError);
    expect(() => resolveOptions({ limits: { slowReaderCloseMs: 20_000 } })).toThrow(/slowReaderCloseMs.*resumeGraceMs/);
    expect(resolveOptions({ limits: { slowReaderCloseMs: 9_999, resumeGraceMs: 10_000 } }).limits.slowReaderCloseMs).toBe(9_999);
    expect(resolveOptions({ limits: { slowReaderCloseMs: 20_000, resumeGraceMs: 0 } }).limits.resumeGraceMs).toBe(0);
    // Only the grace set: the cast-off deadline follows it (half), instead of refusing the defaults.
    expect(resolveOptions({ limits: { resumeGraceMs: 3_000 } }).limits.slowReaderCloseMs).toBe(1_500);
    expect(resolveOptions({ limits: { resumeGraceMs: 60_000 } }).limits.slowReaderCloseMs).toBe(5_000);
  });
});
