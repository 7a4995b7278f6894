import { afterEach, describe, expect, it } from 'vitest';
import { CLOSE_CODES, ERROR_CODES, type ErrorCode, type PeerInfo } from '../../signaling/protocol/index.js';
import { type JoinOutcome, MemoryRoomStore, type Sink, signToken } from '../../signaling/server/index.js';
import { cleanup } from '../helpers/resources.js';
import { startFakeClockServer, startServer } from '../helpers/server.js';
import type { FrameOf } from '../helpers/ws-client.js';

afterEach(cleanup);

const SECRET = 'a-test-secret-of-32-characters!!';

/** A store whose shared backend is unreachable (a cluster node without Redis). */
class UnreachableStore extends MemoryRoomStore {
  override join(): JoinOutcome {
    return { ok: false, code: 'unavailable' };
  }
}

/** A store whose join fails the way a broken backend would. */
class ThrowingStore extends MemoryRoomStore {
  override join(_room: string, _peer: PeerInfo, _sink: Sink): JoinOutcome {
    throw new Error('store is down');
  }
}

/**
 * One way to provoke each error code, each on a fresh server, with `ref` 'r-<code>' where
 * the server can read it. 'server-full' is reserved (capacity is refused at the upgrade).
 */
const producers: Record<Exclude<ErrorCode, 'server-full'>, () => Promise<FrameOf<'error'>>> = {
  async 'bad-json'() {
    const c = await (await startServer()).connect();
    c.sendRaw('{"type":"join",');
    return c.next('error');
  },
  async 'bad-message'() {
    const c = await (await startServer()).connect();
    return c.expectError({ type: 'dance', ref: 'r-bad-message' });
  },
  async 'too-large'() {
    const c = await (await startServer({ limits: { maxMetaBytes: 32 } })).connect();
    return c.expectError({ type: 'join', room: 'r', meta: { bio: 'x'.repeat(64) }, ref: 'r-too-large' });
  },
  async 'rate-limited'() {
    const c = await (await startFakeClockServer({ limits: { messageBurst: 1, messagesPerSecond: 1 } })).connect();
    await c.join('r');
    return c.expectError({ type: 'leave', ref: 'r-rate-limited' });
  },
  async 'not-joined'() {
    const c = await (await startServer()).connect();
    return c.expectError({ type: 'signal', to: 'someone', data: {}, ref: 'r-not-joined' });
  },
  async 'already-joined'() {
    const c = await (await startServer()).connect();
    await c.join('r');
    return c.expectError({ type: 'join', room: 'r', ref: 'r-already-joined' });
  },
  async 'peer-not-found'() {
    const c = await (await startServer()).connect();
    await c.join('r');
    return c.expectError({ type: 'signal', to: 'nobody', data: {}, ref: 'r-peer-not-found' });
  },
  async 'room-full'() {
    const srv = await startServer({ limits: { maxPeersPerRoom: 1 } });
    await srv.joined('r');
    return (await srv.connect()).expectError({ type: 'join', room: 'r', ref: 'r-room-full' });
  },
  async 'too-many-rooms'() {
    const srv = await startServer({ limits: { maxRooms: 1 } });
    await srv.joined('one');
    return (await srv.connect()).expectError({ type: 'join', room: 'two', ref: 'r-too-many-rooms' });
  },
  async unauthorized() {
    const srv = await startServer({ secret: SECRET });
    const token = await signToken(SECRET, { room: 'mine', ttlSeconds: 60 });
    const c = await srv.connect({ query: `?token=${token}` });
    return c.expectError({ type: 'join', room: 'theirs', ref: 'r-unauthorized' });
  },
  async 'relay-disabled'() {
    const c = await (await startServer({ relay: false })).connect();
    await c.join('r');
    return c.expectError({ type: 'relay', to: 'someone', channel: 'reliable', data: 'x', ref: 'r-relay-disabled' });
  },
  async unavailable() {
    const c = await (await startServer({ store: new UnreachableStore({ maxPeersPerRoom: 8, maxRooms: 8 }) })).connect();
    const error = await c.expectError({ type: 'join', room: 'r', ref: 'r-unavailable' });
    // Not final: the client is told to try again later, and reconnects with backoff.
    expect((await c.closed).code).toBe(CLOSE_CODES.tooSlow);
    return error;
  },
  async internal() {
    const c = await (await startServer({ store: new ThrowingStore({ maxPeersPerRoom: 8, maxRooms: 8 }) })).connect();
    return c.expectError({ type: 'join', room: 'r', ref: 'r-internal' });
  },
};

describe('errors: every error code', () => {
  it.each(ERROR_CODES.filter((c) => c !== 'server-full'))('%s can be produced, with a message and its ref echoed', async (code) => {
    const err = await producers[code as Exclude<ErrorCode, 'server-full'>]();
    expect(err.code).toBe(code);
    expect(err.message.length).toBeGreaterThan(0);
    // bad-json has no parseable ref; rate-limited messages are dropped unread.
    if (code === 'bad-json' || code === 'rate-limited') expect(err.ref).toBeUndefined();
    else expect(err.ref).toBe(`r-${code}`);
  });

  it("has a producer for every code but the reserved 'server-full'", () => {
    expect(Object.keys(producers).sort()).toEqual(ERROR_CODES.filter((c) => c !== 'server-full').sort());
  });
});

describe('errors: bad-json and bad-message', () => {
  it.each([['{'], ['not json at all'], [''], ['{"type":"join"'], ['\u00ff\u00fe']])('bad-json for %j', async (text) => {
    const c = await (await startServer()).connect();
    c.sendRaw(text);
    const err = await c.next('error');
    expect(err.code).toBe('bad-json');
    expect(err.ref).toBeUndefined();
  });

  it('refuses binary frames with bad-message, even when they hold valid JSON', async () => {
    const c = await (await startServer()).connect();
    c.sendRaw(Buffer.from(JSON.stringify({ type: 'join', room: 'r' })), true);
    const err = await c.next('error');
    expect(err.code).toBe('bad-message');
    expect(err.message).toMatch(/binary/);
    // The binary join was not acted upon: the connection is still not in a room.
    expect((await c.expectError({ type: 'leave' })).code).toBe('not-joined');
  });

  const badMessages: [string, unknown][] = [
    ['an unknown type', { type: 'hello' }],
    ['no type', { room: 'r' }],
    ['a number', 42],
    ['null', null],
    ['an array', [{ type: 'join', room: 'r' }]],
    ['a string', 'join'],
    ['join without room', { type: 'join' }],
    ['an empty room name', { type: 'join', room: '' }],
    ['a room name with a space', { type: 'join', room: 'my room' }],
    ['a room name with a slash', { type: 'join', room: '../etc' }],
    ['a room name with non-ASCII', { type: 'join', room: 'café' }],
    ['a 65-character room name', { type: 'join', room: 'a'.repeat(65) }],
    ['a room that is not a string', { type: 'join', room: 7 }],
    ['meta that is an array', { type: 'join', room: 'r', meta: [1, 2] }],
    ['meta that is a string', { type: 'join', room: 'r', meta: 'me' }],
    ['an empty resume token', { type: 'join', room: 'r', resume: '' }],
    ['signal without data', { type: 'signal', to: 'x' }],
    ['signal without to', { type: 'signal', data: 1 }],
    ['signal to an empty id', { type: 'signal', to: '', data: 1 }],
    ['a ref over 64 characters', { type: 'leave', ref: 'r'.repeat(65) }],
  ];

  it.each(badMessages)('bad-message for %s', async (_what, message) => {
    const c = await (await startServer()).connect();
    const err = await c.expectError(message);
    expect(err.code).toBe('bad-message');
    expect(err.ref).toBeUndefined();
  });

  it('accepts the longest valid room name and every allowed character', async () => {
    const srv = await startServer();
    const c = await srv.connect();
    const name = `Az09_.-${'x'.repeat(57)}`;
    expect(name).toHaveLength(64);
    expect((await c.join(name)).room).toBe(name);
  });

  it('echoes ref on bad-message when the ref itself is valid, and points at the bad field', async () => {
    const c = await (await startServer()).connect();
    const err = await c.expectError({ type: 'join', room: 'no spaces', ref: 'join-1' });
    expect(err).toMatchObject({ code: 'bad-message', ref: 'join-1' });
    expect(err.message).toMatch(/room/);
  });

  it('ignores unknown fields (forward compatibility)', async () => {
    const srv = await startServer();
    const c = await srv.connect();
    const welcome = await c.join('r', { future: { feature: true }, priority: 3 });
    expect(welcome.room).toBe('r');
  });
});

describe('errors: too-large', () => {
  it('refuses a message over maxMessageBytes (counted in UTF-8 bytes) and accepts one of exactly that size', async () => {
    const limit = 256;
    const srv = await startServer({ limits: { maxMessageBytes: limit, maxFrameBytes: 4096 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');

    const head = Buffer.byteLength(JSON.stringify({ type: 'signal', to: b.id, data: '' }));
    const signalOf = (bytes: number): string => {
      const text = JSON.stringify({ type: 'signal', to: b.id, data: 'x'.repeat(bytes - head) });
      expect(Buffer.byteLength(text)).toBe(bytes);
      return text;
    };

    a.client.sendRaw(signalOf(limit));
    expect((await b.client.next('signal')).from).toBe(a.id);

    a.client.sendRaw(signalOf(limit + 1));
    const err = await a.client.next('error');
    expect(err.code).toBe('too-large');
    expect(err.message).toContain(String(limit));

    // 2-byte characters: at most `limit` characters, but more than `limit` bytes.
    const twoByte = JSON.stringify({ type: 'signal', to: b.id, data: 'é'.repeat(Math.floor((limit - head) / 2) + 1) });
    expect(twoByte.length).toBeLessThanOrEqual(limit);
    expect(Buffer.byteLength(twoByte)).toBeGreaterThan(limit);
    a.client.sendRaw(twoByte);
    expect((await a.client.next('error')).code).toBe('too-large');

    // Nothing over the limit reached b; the connection is still usable.
    await b.client.sync();
    expect(b.client.pending('signal')).toEqual([]);
    a.client.send({ type: 'signal', to: b.id, data: 'still fine' });
    expect((await b.client.next('signal')).data).toBe('still fine');
  });

  it('refuses a join whose meta is over maxMetaBytes, and accepts meta of exactly that size', async () => {
    const srv = await startServer({ limits: { maxMetaBytes: 40 } });
    const c = await srv.connect();
    const metaOf = (bytes: number): Record<string, string> => ({ n: 'm'.repeat(bytes - JSON.stringify({ n: '' }).length) });
    expect(JSON.stringify(metaOf(41))).toHaveLength(41);

    const err = await c.expectError({ type: 'join', room: 'r', meta: metaOf(41), ref: 'meta' });
    expect(err).toMatchObject({ code: 'too-large', ref: 'meta' });
    expect(err.message).toMatch(/meta/);
    // The join was refused: not in a room.
    expect((await c.expectError({ type: 'leave' })).code).toBe('not-joined');

    const welcome = await c.join('r', { meta: metaOf(40) });
    expect(welcome.room).toBe('r');
  });
});

describe('errors: protocol misuse', () => {
  it('not-joined for signal and leave before join', async () => {
    const c = await (await startServer()).connect();
    expect(await c.expectError({ type: 'signal', to: 'x', data: 1, ref: 's' })).toMatchObject({ code: 'not-joined', ref: 's' });
    expect(await c.expectError({ type: 'leave', ref: 'l' })).toMatchObject({ code: 'not-joined', ref: 'l' });
  });

  it('not-joined after leave', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    a.client.send({ type: 'leave' });
    expect(await a.client.expectError({ type: 'signal', to: b.id, data: 1 })).toMatchObject({ code: 'not-joined' });
  });

  it('already-joined for a second join, which changes nothing', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const err = await a.client.expectError({ type: 'join', room: 'other', ref: 'again' });
    expect(err).toMatchObject({ code: 'already-joined', ref: 'again' });
    // Still in room r with the same id.
    b.client.send({ type: 'signal', to: a.id, data: 'still here' });
    expect(await a.client.next('signal')).toMatchObject({ from: b.id, data: 'still here' });
  });

  it('peer-not-found for an unknown id and for signalling yourself', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    expect(await a.client.expectError({ type: 'signal', to: 'ghost', data: 1, ref: 'g' })).toMatchObject({ code: 'peer-not-found', ref: 'g' });
    expect(await a.client.expectError({ type: 'signal', to: a.id, data: 1, ref: 'me' })).toMatchObject({ code: 'peer-not-found', ref: 'me' });
    await a.client.sync();
    expect(a.client.pending('signal')).toEqual([]);
  });

  it('room-full at maxPeersPerRoom; a seat frees up when someone leaves', async () => {
    const srv = await startServer({ limits: { maxPeersPerRoom: 2 } });
    const a = await srv.joined('r');
    await srv.joined('r');
    const c = await srv.connect();
    expect(await c.expectError({ type: 'join', room: 'r', ref: 'full' })).toMatchObject({ code: 'room-full', ref: 'full' });
    // Other rooms are not affected.
    expect((await (await srv.connect()).join('other')).peers).toEqual([]);

    a.client.send({ type: 'leave' });
    await a.client.sync();
    const welcome = await c.join('r');
    expect(welcome.peers).toHaveLength(1);
  });

  it('too-many-rooms beyond maxRooms; existing rooms still accept peers; an emptied room frees a slot', async () => {
    const srv = await startServer({ limits: { maxRooms: 2 } });
    const one = await srv.joined('one');
    await srv.joined('two');
    const c = await srv.connect();
    expect(await c.expectError({ type: 'join', room: 'three', ref: 't' })).toMatchObject({ code: 'too-many-rooms', ref: 't' });
    const one2 = await srv.connect();
    expect((await one2.join('one')).peers).toHaveLength(1);

    // Half-empty is not empty: 'one' still exists while one peer is left in it.
    one.client.send({ type: 'leave' });
    await one.client.sync();
    expect(await c.expectError({ type: 'join', room: 'three' })).toMatchObject({ code: 'too-many-rooms' });
    one2.send({ type: 'leave' });
    await one2.sync();
    expect((await c.join('three')).room).toBe('three');
    expect(await srv.scrape()).toMatch(/^rallypoint_rooms 2$/m);
  });

  it('unauthorized when the token room differs from the joined room: error, then close 4003', async () => {
    const srv = await startServer({ secret: SECRET });
    const token = await signToken(SECRET, { room: 'mine', ttlSeconds: 60 });
    const c = await srv.connect({ headers: { Authorization: `Bearer ${token}` } });
    const err = await c.expectError({ type: 'join', room: 'yours', ref: 'u' });
    expect(err).toMatchObject({ code: 'unauthorized', ref: 'u' });
    expect(err.message).toContain('yours');
    expect((await c.closed).code).toBe(4003);
    // The error came before the close.
    expect(c.received.at(-1)).toMatchObject({ type: 'error', code: 'unauthorized' });

    // The same token may join its own room.
    const ok = await srv.connect({ headers: { Authorization: `Bearer ${token}` } });
    expect((await ok.join('mine')).room).toBe('mine');
  });

  it('internal when the room store fails: logged, error sent, connection stays usable', async () => {
    const srv = await startServer({ store: new ThrowingStore({ maxPeersPerRoom: 8, maxRooms: 8 }) });
    const c = await srv.connect();
    const err = await c.expectError({ type: 'join', room: 'r' });
    expect(err.code).toBe('internal');
    // The message does not leak internals.
    expect(err.message).not.toContain('store is down');
    const logged = await srv.logs.waitFor((l) => l.msg === 'handler failed');
    expect(logged.level).toBe(50);
    expect(JSON.stringify(logged.err)).toContain('store is down');
    // One internal error does not close the connection.
    expect(await c.expectError({ type: 'leave' })).toMatchObject({ code: 'not-joined' });
  });
});
