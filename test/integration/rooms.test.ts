import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../signaling/protocol/index.js';
import { cleanup } from '../helpers/resources.js';
import { startFakeClockServer, startServer } from '../helpers/server.js';

afterEach(cleanup);

describe('rooms: join, leave, presence', () => {
  it('welcomes the first peer into an empty room with its id, resume token and the limits in force', async () => {
    const srv = await startServer({ limits: { maxPeersPerRoom: 7, resumeGraceMs: 1234 } });
    const a = await srv.connect();
    expect(a.ws.protocol).toBe('rallypoint.v1');
    a.send({ type: 'join', room: 'lobby' });
    const welcome = await a.next('welcome');
    expect(welcome.room).toBe('lobby');
    expect(welcome.id).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(welcome.peers).toEqual([]);
    expect(welcome.resumed).toBe(false);
    expect(welcome.iceServers).toEqual([]);
    expect(welcome.resume).toEqual({ token: expect.any(String), graceMs: 1234 });
    expect(welcome.limits).toEqual({
      maxMessageBytes: DEFAULT_LIMITS.maxMessageBytes,
      maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes,
      maxMetaBytes: DEFAULT_LIMITS.maxMetaBytes,
      messagesPerSecond: DEFAULT_LIMITS.messagesPerSecond,
      messageBurst: DEFAULT_LIMITS.messageBurst,
      maxPeersPerRoom: 7,
      resumeGraceMs: 1234,
      relayMessagesPerSecond: DEFAULT_LIMITS.relayMessagesPerSecond,
      relayMessageBurst: DEFAULT_LIMITS.relayMessageBurst,
      relayBytesPerSecond: DEFAULT_LIMITS.relayBytesPerSecond,
      relayBytesBurst: DEFAULT_LIMITS.relayBytesBurst,
      maxBufferedBytes: DEFAULT_LIMITS.maxBufferedBytes,
    });
  });

  it('lists existing peers (with meta) in welcome and announces the newcomer to them with peer-joined', async () => {
    const srv = await startServer();
    const a = await srv.joined('r', { meta: { name: 'alice' } });
    const b = await srv.joined('r');
    const bJoined = await a.client.next('peer-joined');
    expect(bJoined.peer).toEqual({ id: b.id });

    const c = await srv.connect();
    const welcome = await c.join('r', { meta: { name: 'carol', n: 3 } });
    expect(welcome.peers).toEqual(expect.arrayContaining([{ id: a.id, meta: { name: 'alice' } }, { id: b.id }]));
    expect(welcome.peers).toHaveLength(2);
    for (const other of [a.client, b.client]) {
      const joined = await other.next('peer-joined');
      expect(joined.peer).toEqual({ id: welcome.id, meta: { name: 'carol', n: 3 } });
    }
    // The newcomer is not told about itself.
    await c.sync();
    expect(c.pending('peer-joined')).toEqual([]);
    expect(new Set([a.id, b.id, welcome.id]).size).toBe(3);
  });

  it("tells the room peer-left with reason 'left' on leave, and the connection can join again", async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.next('peer-joined');

    b.client.send({ type: 'leave' });
    const left = await a.client.next('peer-left');
    expect(left).toEqual({ type: 'peer-left', id: b.id, reason: 'left' });

    // leave does not end the connection: the same socket may join another room.
    const again = await b.client.join('elsewhere');
    expect(again.id).not.toBe(b.id);
    expect(again.peers).toEqual([]);
    // ... and the old room really lost it: a signal to the old id fails.
    const err = await a.client.expectError({ type: 'signal', to: b.id, data: 1 });
    expect(err.code).toBe('peer-not-found');
  });

  it("tells the room peer-left with reason 'closed' when a peer closes its socket (code 1000)", async () => {
    const srv = await startFakeClockServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.next('peer-joined');

    await b.client.close(1000);
    expect(await srv.logs.closed(b.id)).toMatchObject({ code: 1000 });
    // A deliberate close ends the session at once, without waiting for a grace timer.
    await a.client.sync();
    expect(a.client.pending('peer-left')).toEqual([{ type: 'peer-left', id: b.id, reason: 'closed' }]);
    expect(srv.clock.pending().timeouts).toBe(0);
  });

  it('empties the room when the last peer leaves (rooms gauge)', async () => {
    const srv = await startServer();
    const a = await srv.joined('solo');
    expect(await srv.scrape()).toMatch(/^rallypoint_rooms 1$/m);
    a.client.send({ type: 'leave' });
    // A second join on the same socket is processed after the leave: a barrier for it.
    await a.client.join('other');
    const text = await srv.scrape();
    expect(text).toMatch(/^rallypoint_rooms 1$/m);
    expect(text).toMatch(/^rallypoint_peers 1$/m);
  });
});

describe('rooms: relaying signals', () => {
  it('relays signal data verbatim with a server-stamped from', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');

    const data = { sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n', type: 'offer', nested: [1, 'two', null, { x: true }], unicode: 'héllo ✓ 🚀' };
    b.client.send({ type: 'signal', to: a.id, data });
    const got = await a.client.next('signal');
    expect(got).toEqual({ type: 'signal', from: b.id, data });

    a.client.send({ type: 'signal', to: b.id, data: 'answer' });
    expect(await b.client.next('signal')).toEqual({ type: 'signal', from: a.id, data: 'answer' });

    // Falsy but defined data is relayed too.
    for (const value of [0, false, null, '']) {
      a.client.send({ type: 'signal', to: b.id, data: value });
      expect((await b.client.next('signal')).data).toBe(value);
    }
  });

  it('ignores a client-supplied from: the receiver always sees the real sender', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const c = await srv.joined('r');

    c.client.send({ type: 'signal', to: a.id, from: b.id, data: { spoof: true } });
    const got = await a.client.next('signal');
    expect(got.from).toBe(c.id);
    expect(got.data).toEqual({ spoof: true });
    expect(Object.keys(got).sort()).toEqual(['data', 'from', 'type']);
  });

  it('delivers a signal only to its addressee', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const c = await srv.joined('r');

    a.client.send({ type: 'signal', to: b.id, data: 'for b only' });
    expect((await b.client.next('signal')).data).toBe('for b only');
    await c.client.sync();
    await a.client.sync();
    expect(c.client.pending('signal')).toEqual([]);
    expect(a.client.pending('signal')).toEqual([]);
  });

  it('keeps the order of signals between two peers', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    for (let i = 0; i < 100; i++) a.client.send({ type: 'signal', to: b.id, data: i });
    const got: unknown[] = [];
    for (let i = 0; i < 100; i++) got.push((await b.client.next('signal')).data);
    expect(got).toEqual([...Array(100).keys()]);
  });
});

describe('rooms: isolation', () => {
  it('cannot signal a peer in another room (peer-not-found) and nothing is delivered', async () => {
    const srv = await startServer();
    const a = await srv.joined('red');
    const b = await srv.joined('blue');

    const err = await a.client.expectError({ type: 'signal', to: b.id, data: 'hi', ref: 'x-room' });
    expect(err).toMatchObject({ code: 'peer-not-found', ref: 'x-room' });
    await b.client.sync();
    expect(b.client.pending()).toEqual([]);
  });

  it('does not broadcast peer-joined / peer-left across rooms', async () => {
    const srv = await startServer();
    const red = await srv.joined('red');
    const blue = await srv.joined('blue');

    const red2 = await srv.joined('red');
    expect((await red.client.next('peer-joined')).peer.id).toBe(red2.id);
    red2.client.send({ type: 'leave' });
    expect((await red.client.next('peer-left')).id).toBe(red2.id);

    await blue.client.sync();
    expect(blue.client.received).toEqual([expect.objectContaining({ type: 'welcome' })]);
  });

  it('keeps same-named-looking rooms apart (names are case-sensitive)', async () => {
    const srv = await startServer();
    const lower = await srv.joined('room');
    const upper = await srv.connect();
    const welcome = await upper.join('Room');
    expect(welcome.peers).toEqual([]);
    await lower.client.sync();
    expect(lower.client.pending('peer-joined')).toEqual([]);
  });
});

describe('rooms: ICE servers', () => {
  it('hands every peer the configured ICE servers, or the per-peer result of a function', async () => {
    const fixed = await startServer({ iceServers: [{ urls: 'stun:stun.example.org:3478' }] });
    const a = await fixed.joined('r');
    const wa = a.client.received[0];
    expect(wa).toMatchObject({ type: 'welcome', iceServers: [{ urls: 'stun:stun.example.org:3478' }] });

    const seen: string[] = [];
    const perPeer = await startServer({
      iceServers: ({ peerId, request }) => {
        seen.push(peerId);
        return [{ urls: ['turn:turn.example.org'], username: `${peerId}:${request.headers['x-user'] ?? ''}`, credential: 'c' }];
      },
    });
    const b = await perPeer.connect({ headers: { 'X-User': 'bob' } });
    const wb = await b.join('r');
    expect(seen).toEqual([wb.id]);
    expect(wb.iceServers).toEqual([{ urls: ['turn:turn.example.org'], username: `${wb.id}:bob`, credential: 'c' }]);
  });
});
