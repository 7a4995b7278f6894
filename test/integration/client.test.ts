/**
 * SignalingClient against a real listenSignaling server (port 0, loopback). No sleeps: every
 * wait is on an event (`client.next(...)`, a socket's `close`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createNodeSignalingClient } from '../../peer/node.js';
import { ExponentialBackoff, type ReconnectPolicy, type SignalingClient, type SignalingClientOptions, SignalingError, type SignalingState } from '../../signaling/client/index.js';
import { signToken } from '../../signaling/server/index.js';
import { cleanup } from '../helpers/resources.js';
import { activeResources, allClosed, recordingWebSocket, startServer, tracked, upgradeSockets } from '../helpers/server.js';

afterEach(cleanup);

/** Reconnect quickly in tests. */
const fast = (): ExponentialBackoff => new ExponentialBackoff({ baseMs: 5, capMs: 20 });

function client(opts: Partial<SignalingClientOptions> & { url: string }): SignalingClient {
  const c = createNodeSignalingClient({ room: 'lobby', reconnect: fast(), ...opts });
  tracked(c);
  return c;
}

/** Records every event of a client, in order. */
function record(c: SignalingClient): { events: string[]; states: SignalingState[]; peerLeft: string[]; errors: SignalingError[] } {
  const log = { events: [] as string[], states: [] as SignalingState[], peerLeft: [] as string[], errors: [] as SignalingError[] };
  for (const e of ['open', 'peer-joined', 'peer-left', 'signal', 'error', 'reconnecting', 'close'] as const) c.on(e, () => log.events.push(e));
  c.on('state', (s) => log.states.push(s));
  c.on('peer-left', (id) => log.peerLeft.push(id));
  c.on('error', (e) => log.errors.push(e));
  return log;
}

/** Expects fn to throw a SignalingError with this code. */
function throwsCode(fn: () => unknown, code: string): SignalingError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SignalingError);
    expect((err as SignalingError).code).toBe(code);
    return err as SignalingError;
  }
  throw new Error(`expected a SignalingError ${code}`);
}

async function rejectsCode(p: Promise<unknown>, code: string): Promise<SignalingError> {
  const err = await p.then(
    () => {
      throw new Error(`expected a rejection with ${code}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SignalingError);
  expect((err as SignalingError).code).toBe(code);
  return err as SignalingError;
}

describe('connect and room events', () => {
  it('connect() resolves with the welcome; state goes connecting -> open', async () => {
    const s = await startServer({ iceServers: [{ urls: 'stun:stun.example.com:3478' }] });
    const a = client({ url: s.wsUrl });
    const log = record(a);
    expect(a.state).toBe('idle');
    expect(a.id).toBeNull();
    const opened = a.next('open');
    const welcome = await a.connect();
    expect(welcome).toEqual({ id: expect.any(String), room: 'lobby', peers: [], iceServers: [{ urls: 'stun:stun.example.com:3478' }], resumed: false, limits: a.limits });
    expect((await opened)[0]).toEqual(welcome);
    expect(a.id).toBe(welcome.id);
    expect(a.state).toBe('open');
    expect(log.states).toEqual(['connecting', 'open']);
    expect(a.limits.maxMessageBytes).toBe(16_384);
    // connect() when already open resolves with the current welcome.
    await expect(a.connect()).resolves.toEqual(welcome);
  });

  it('peer-joined, signal (any JSON) and peer-left (left and closed) reach the other peer', async () => {
    const s = await startServer();
    const a = client({ url: s.wsUrl, meta: { name: 'ada' } });
    const wa = await a.connect();
    const b = client({ url: s.wsUrl, meta: { name: 'bob' } });
    const joined = a.next('peer-joined');
    const wb = await b.connect();
    expect(wb.peers).toEqual([{ id: wa.id, meta: { name: 'ada' } }]);
    expect((await joined)[0]).toEqual({ id: wb.id, meta: { name: 'bob' } });

    for (const data of [{ sdp: { type: 'offer', sdp: 'v=0\r\n' } }, null, 0, false, '', [], 'é😀', { deep: [[[{ x: 1 }]]] }]) {
      const got = b.next('signal');
      a.signal(wb.id, data);
      expect(await got).toEqual([wa.id, data]);
    }
    const back = a.next('signal');
    b.signal(wa.id, { candidate: 'c' });
    expect(await back).toEqual([wb.id, { candidate: 'c' }]);

    // leave(): reason 'left'.
    const left = a.next('peer-left');
    const bClosed = b.next('close');
    b.leave();
    expect(await left).toEqual([wb.id, 'left']);
    expect((await bClosed)[0].code).toBe(1000);
    expect(b.state).toBe('closed');

    // close() without leave: reason 'closed' (a deliberate close is not resumable).
    const c = client({ url: s.wsUrl });
    const wc = await c.connect();
    const cLeft = a.next('peer-left');
    c.close();
    expect(await cLeft).toEqual([wc.id, 'closed']);
  });
});

describe('send validation', () => {
  it('invalid to / data, and a message over welcome.limits.maxMessageBytes, throw locally without sending', async () => {
    const s = await startServer({ limits: { maxMessageBytes: 1_024 } });
    const rec = recordingWebSocket();
    const a = client({ url: s.wsUrl, WebSocket: rec.WS });
    const log = record(a);
    await a.connect();
    const b = client({ url: s.wsUrl });
    const wb = await b.connect();
    expect(a.limits.maxMessageBytes).toBe(1_024);
    const sentBefore = rec.sent.length;

    throwsCode(() => a.signal('', 1), 'invalid-message');
    throwsCode(() => a.signal('x'.repeat(65), 1), 'invalid-message');
    throwsCode(() => a.signal(undefined as unknown as string, 1), 'invalid-message');
    throwsCode(() => a.signal(wb.id, undefined), 'invalid-message');
    throwsCode(() => a.signal(wb.id, () => 1), 'invalid-message');
    throwsCode(() => a.signal(wb.id, Symbol('s')), 'invalid-message');
    throwsCode(() => a.signal(wb.id, { n: 10n }), 'invalid-message');
    const refErr = throwsCode(() => a.signal(wb.id, 1, 'r'.repeat(65)), 'invalid-message');
    expect(refErr.cause).toBeInstanceOf(TypeError);
    // The limit is the announced one (1 KiB here), counted in UTF-8 bytes of the JSON.
    const big = throwsCode(() => a.signal(wb.id, 'x'.repeat(1_024), 'big'), 'too-large');
    expect(big.ref).toBe('big');
    throwsCode(() => a.signal(wb.id, 'é'.repeat(500)), 'too-large'); // 1000 chars of 2 bytes
    expect(rec.sent.length).toBe(sentBefore);

    // Just under the limit goes through.
    const overhead = JSON.stringify({ type: 'signal', to: wb.id, data: '' }).length;
    const got = b.next('signal');
    a.signal(wb.id, 'y'.repeat(1_024 - overhead));
    expect((await got)[1]).toHaveLength(1_024 - overhead);
    expect(rec.sent.length).toBe(sentBefore + 1);
    expect(log.errors).toEqual([]);
  });

  it('send before joined, while connecting and after close is not-open', async () => {
    const s = await startServer();
    const a = client({ url: s.wsUrl });
    throwsCode(() => a.signal('p', 1), 'not-open');
    const p = a.connect();
    expect(a.state).toBe('connecting');
    throwsCode(() => a.signal('p', 1), 'not-open');
    await p;
    a.close();
    throwsCode(() => a.signal('p', 1), 'not-open');
    // leave() after close is harmless.
    expect(() => a.leave()).not.toThrow();
  });

  it('server error frames surface as error events with code and ref, and the client stays open', async () => {
    const s = await startServer();
    const a = client({ url: s.wsUrl });
    const wa = await a.connect();
    const e1 = a.next('error');
    a.signal('nobody-here', { x: 1 }, 'ref-1');
    const [err] = await e1;
    expect(err).toBeInstanceOf(SignalingError);
    expect(err.code).toBe('peer-not-found');
    expect(err.ref).toBe('ref-1');
    expect(err.message).toMatch(/nobody-here/);
    const e2 = a.next('error');
    a.signal(wa.id, 1); // to yourself
    const [self] = await e2;
    expect(self.code).toBe('peer-not-found');
    expect(self.ref).toBeUndefined();
    expect(a.state).toBe('open');
  });
});

describe('join refused', () => {
  it('room-full: connect() rejects with the server code and the client closes without reconnecting', async () => {
    const s = await startServer({ limits: { maxPeersPerRoom: 1 } });
    await client({ url: s.wsUrl }).connect();
    const b = client({ url: s.wsUrl });
    const log = record(b);
    const closed = b.next('close');
    const err = await rejectsCode(b.connect(), 'room-full');
    expect(err.message).toMatch(/lobby/);
    expect((await closed)[0]).toEqual({ code: 1000, reason: 'join refused: room-full' });
    expect(b.state).toBe('closed');
    expect(log.events).toEqual(['error', 'close']);
    await rejectsCode(b.connect(), 'closed');
  });

  it('meta over maxMetaBytes: connect() rejects with too-large', async () => {
    const s = await startServer({ limits: { maxMetaBytes: 64 } });
    const a = client({ url: s.wsUrl, meta: { blob: 'x'.repeat(100) } });
    const closed = a.next('close');
    await rejectsCode(a.connect(), 'too-large');
    await closed;
    expect(a.state).toBe('closed');
  });

  it('an invalid URL rejects connect() (no throw) and closes the client', async () => {
    const a = client({ url: 'not a url' });
    const closed = a.next('close');
    let p: Promise<unknown> | undefined;
    expect(() => {
      p = a.connect();
    }).not.toThrow();
    await rejectsCode(p as Promise<unknown>, 'not-open');
    await closed;
    expect(a.state).toBe('closed');
  });

  it('an invalid room name fails at construction', () => {
    expect(() => createNodeSignalingClient({ url: 'ws://127.0.0.1:1/ws', room: 'bad room' })).toThrow(/room/);
  });
});

describe('reconnect and resume', () => {
  it('after an abrupt drop the client reconnects with backoff and resumes the same id; the room sees nothing; queued signals arrive', async () => {
    const s = await startServer();
    const sockets = upgradeSockets(s);
    // A fixed reconnect delay gives b time to signal a while it is away.
    const policy: ReconnectPolicy = { nextDelayMs: ({ attempt }) => (attempt < 5 ? 50 : null) };
    const a = client({ url: s.wsUrl, reconnect: policy });
    const aLog = record(a);
    const wa = await a.connect();
    const b = client({ url: s.wsUrl });
    const bLog = record(b);
    const wb = await b.connect();
    expect(sockets).toHaveLength(2);

    const reconnecting = a.next('reconnecting');
    const reopened = a.next('open');
    // While a is away, b signals it: the server queues the signal for a's session.
    a.once('reconnecting', () => b.signal(wa.id, { queued: 1 }));
    const queued = a.next('signal');
    sockets[0]!.destroy();

    expect((await reconnecting)[0]).toEqual({ attempt: 0, delayMs: 50, closeCode: 1006 });
    expect(a.state).toBe('reconnecting');
    const [w2] = await reopened;
    expect(w2.resumed).toBe(true);
    expect(w2.id).toBe(wa.id);
    expect(w2.peers).toEqual([{ id: wb.id }]);
    expect(a.id).toBe(wa.id);
    expect(await queued).toEqual([wb.id, { queued: 1 }]);
    expect(aLog.states).toEqual(['connecting', 'open', 'reconnecting', 'open']);

    // Both directions work after the resume; b never saw a leave.
    const toB = b.next('signal');
    a.signal(wb.id, 'after');
    expect(await toB).toEqual([wa.id, 'after']);
    expect(bLog.peerLeft).toEqual([]);
    expect(bLog.events.filter((e) => e !== 'signal')).toEqual(['open']);
    expect(aLog.errors).toEqual([]);

    // A second drop resumes again (the resume token is refreshed on every welcome).
    const again = a.next('open');
    sockets[2]!.destroy();
    const [w3] = await again;
    expect(w3).toMatchObject({ id: wa.id, resumed: true });
    const toB2 = b.next('signal');
    a.signal(wb.id, 'again');
    await toB2;
    expect(bLog.peerLeft).toEqual([]);
  });

  it('after a server restart on the same port the client joins again (new session: resumed false)', async () => {
    const s1 = await startServer();
    const port = s1.port;
    const a = client({ url: s1.wsUrl });
    const wa = await a.connect();
    const reconnecting = a.next('reconnecting');
    await s1.close();
    expect((await reconnecting)[0].closeCode).toBe(1001);
    const reopened = a.next('open');
    await startServer({ port });
    const [w2] = await reopened;
    expect(w2.resumed).toBe(false);
    expect(w2.id).not.toBe(wa.id);
    expect(a.state).toBe('open');
  });

  it('gives up per the policy when the server is gone: close event, connect() rejects with gave-up', async () => {
    const s = await startServer();
    const url = s.wsUrl;
    await s.close();
    const a = client({ url, reconnect: new ExponentialBackoff({ maxAttempts: 2, baseMs: 10 }) });
    const log = record(a);
    const attempts: number[] = [];
    a.on('reconnecting', (info) => {
      attempts.push(info.attempt);
      expect(info.closeCode).toBe(1006);
      expect(info.delayMs).toBeGreaterThanOrEqual(0);
      expect(info.delayMs).toBeLessThan(10 * 2 ** info.attempt);
    });
    const closed = a.next('close');
    const err = await rejectsCode(a.connect(), 'gave-up');
    expect(err.message).toMatch(/2 attempts/);
    expect((await closed)[0].code).toBe(1006);
    expect(attempts).toEqual([0, 1]);
    expect(a.state).toBe('closed');
    expect(log.events.filter((e) => e === 'close')).toHaveLength(1);
  });

  it('gives up after an established connection is lost for good', async () => {
    const s = await startServer();
    const a = client({ url: s.wsUrl, reconnect: new ExponentialBackoff({ maxAttempts: 1, baseMs: 5 }) });
    await a.connect();
    const closed = a.next('close');
    await s.close();
    const [info] = await closed;
    expect(info.reason).toMatch(/gave up/);
    expect(a.state).toBe('closed');
  });

  it('reconnect: false never reconnects', async () => {
    const s = await startServer();
    const sockets = upgradeSockets(s);
    const a = client({ url: s.wsUrl, reconnect: false });
    const log = record(a);
    await a.connect();
    const closed = a.next('close');
    sockets[0]!.destroy();
    expect((await closed)[0].code).toBe(1006);
    expect(log.events).not.toContain('reconnecting');
  });
});

describe('final close codes', () => {
  const secret = 'a-test-secret-of-some-length';

  it('4003 unauthorized (token for another room): error event, close 4003, no reconnect', async () => {
    const s = await startServer({ secret });
    const upgrades = upgradeSockets(s);
    const token = await signToken(secret, { room: 'other', ttlSeconds: 60 });
    const a = client({ url: s.wsUrl, token, room: 'mine' });
    const log = record(a);
    const closed = a.next('close');
    const err = await rejectsCode(a.connect(), 'unauthorized');
    expect(err.message).toMatch(/mine/);
    expect((await closed)[0].code).toBe(4003);
    expect(log.events).toEqual(['error', 'close']);
    expect(log.states).toEqual(['connecting', 'closed']);
    expect(upgrades).toHaveLength(1);
  });

  it('a token for the right room is accepted', async () => {
    const s = await startServer({ secret });
    const token = await signToken(secret, { room: 'mine', ttlSeconds: 60 });
    const a = client({ url: s.wsUrl, token, room: 'mine' });
    await expect(a.connect()).resolves.toMatchObject({ room: 'mine' });
  });

  it('a missing token is refused at the upgrade (401, seen as 1006): retried per policy, then gave-up', async () => {
    const s = await startServer({ secret });
    const upgrades = upgradeSockets(s);
    const a = client({ url: s.wsUrl, reconnect: new ExponentialBackoff({ maxAttempts: 1, baseMs: 5 }) });
    await rejectsCode(a.connect(), 'gave-up');
    expect(upgrades).toHaveLength(2);
  });
});

describe('close()', () => {
  it('is idempotent, emits close once, rejects later connect() and leaves no timers or sockets', async () => {
    const s = await startServer();
    const before = activeResources();
    const rec = recordingWebSocket();
    const a = client({ url: s.wsUrl, WebSocket: rec.WS });
    const log = record(a);
    await a.connect();
    a.close();
    a.close();
    a.leave();
    expect(log.events.filter((e) => e === 'close')).toHaveLength(1);
    expect(a.state).toBe('closed');
    await rejectsCode(a.connect(), 'closed');
    await allClosed(rec.instances);
    const after = activeResources();
    expect(after.Timeout ?? 0).toBeLessThanOrEqual(before.Timeout ?? 0);
    expect(after.TCPSocketWrap ?? 0).toBeLessThanOrEqual(before.TCPSocketWrap ?? 0);
  });

  it('while a retry is pending: clears the retry timer and rejects the pending connect()', async () => {
    const s = await startServer();
    const url = s.wsUrl;
    await s.close();
    const before = activeResources();
    // random ~1: the first retry waits almost a minute, so the timer is certainly pending.
    const a = client({ url, reconnect: new ExponentialBackoff({ baseMs: 60_000, capMs: 60_000, random: () => 0.999 }) });
    const pending = a.connect();
    const [info] = await a.next('reconnecting');
    expect(info.delayMs).toBeGreaterThan(50_000);
    expect(activeResources().Timeout ?? 0).toBe((before.Timeout ?? 0) + 1);
    const closed = a.next('close');
    a.close();
    expect((await closed)[0]).toEqual({ code: 1000, reason: 'client closed' });
    await rejectsCode(pending, 'closed');
    expect(activeResources().Timeout ?? 0).toBe(before.Timeout ?? 0);
    expect(a.state).toBe('closed');
  });

  it('while connecting: rejects connect() and closes the socket', async () => {
    const s = await startServer();
    const rec = recordingWebSocket();
    const a = client({ url: s.wsUrl, WebSocket: rec.WS });
    const p = a.connect();
    a.close();
    await rejectsCode(p, 'closed');
    await allClosed(rec.instances);
    expect(rec.instances).toHaveLength(1);
  });

  it('close() before connect() just closes', async () => {
    const a = client({ url: 'ws://127.0.0.1:9/ws' });
    const closed = a.next('close');
    a.close();
    await closed;
    await rejectsCode(a.connect(), 'closed');
  });
});

describe('construction', () => {
  it('without a WebSocket implementation (Node 20 has no global one) throws not-open', async () => {
    const { SignalingClient } = await import('../../signaling/client/index.js');
    const g = globalThis as { WebSocket?: unknown };
    const saved = g.WebSocket;
    delete g.WebSocket;
    try {
      throwsCode(() => new SignalingClient({ url: 'ws://x/ws', room: 'r' }), 'not-open');
    } finally {
      if (saved !== undefined) g.WebSocket = saved;
    }
  });
});
