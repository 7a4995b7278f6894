import { afterEach, describe, expect, it } from 'vitest';
import type { PeerInfo } from '../../signaling/protocol/index.js';
import { type JoinOutcome, MemoryRoomStore, type RoomStore, type Sink } from '../../signaling/server/index.js';
import { cleanup, type Deferred, defer, deferred } from '../helpers/resources.js';
import { metricValue, startFakeClockServer } from '../helpers/server.js';

afterEach(cleanup);

const GRACE = 10_000;

describe('resume', () => {
  it('within the grace period: same id, resumed true, the room sees nothing, signals sent meanwhile arrive after welcome', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: GRACE } });
    const a = await srv.joined('r', { meta: { name: 'a' } });
    const b = await srv.joined('r');
    await a.client.next('peer-joined');

    // a's network drops: no close frame, the server sees 1006.
    await a.client.terminate();
    expect(await srv.logs.closed(a.id)).toMatchObject({ code: 1006, room: 'r' });
    expect(srv.clock.pending().timeouts).toBe(1);

    // Signals to a during the gap are accepted (no peer-not-found) and queued.
    b.client.send({ type: 'signal', to: a.id, data: 'gap-1', ref: 'g1' });
    b.client.send({ type: 'signal', to: a.id, data: { n: 2 }, ref: 'g2' });
    await b.client.sync();
    expect(b.client.pending('error')).toEqual([]);

    const a2 = await srv.connect();
    a2.send({ type: 'join', room: 'r', resume: a.token });
    const first = await a2.next();
    expect(first).toMatchObject({ type: 'welcome', id: a.id, room: 'r', resumed: true, peers: [{ id: b.id }] });
    if (first.type !== 'welcome') throw new Error('unreachable');
    expect(first.resume.token).not.toBe(a.token);
    expect(first.resume.graceMs).toBe(GRACE);
    expect(await a2.next()).toEqual({ type: 'signal', from: b.id, data: 'gap-1' });
    expect(await a2.next()).toEqual({ type: 'signal', from: b.id, data: { n: 2 } });

    // The grace timer is gone and the room never heard of the gap.
    expect(srv.clock.pending().timeouts).toBe(0);
    srv.clock.runTimeouts();
    await b.client.sync();
    expect(b.client.pending('peer-left')).toEqual([]);
    expect(b.client.pending('peer-joined')).toEqual([]);

    // Both directions work again.
    a2.send({ type: 'signal', to: b.id, data: 'back' });
    expect(await b.client.next('signal')).toEqual({ type: 'signal', from: a.id, data: 'back' });
    b.client.send({ type: 'signal', to: a.id, data: 'welcome back' });
    expect((await a2.next('signal')).data).toBe('welcome back');
    expect(metricValue(await srv.scrape(), 'rallypoint_resumes_total', { result: 'resumed' })).toBe(1);
  });

  it("after the grace period: the room sees peer-left 'closed', and a resume gets a new id with resumed false", async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: GRACE } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.terminate();
    await srv.logs.closed(a.id);

    srv.clock.advance(GRACE - 1);
    await b.client.sync();
    expect(b.client.pending('peer-left')).toEqual([]);
    srv.clock.advance(1);
    expect(await b.client.next('peer-left')).toEqual({ type: 'peer-left', id: a.id, reason: 'closed' });
    // Signals to it now fail.
    expect((await b.client.expectError({ type: 'signal', to: a.id, data: 1 })).code).toBe('peer-not-found');

    const a2 = await srv.connect();
    const welcome = await a2.join('r', { resume: a.token });
    expect(welcome.resumed).toBe(false);
    expect(welcome.id).not.toBe(a.id);
    expect(welcome.peers).toEqual([{ id: b.id }]);
    expect((await b.client.next('peer-joined')).peer.id).toBe(welcome.id);
    expect(metricValue(await srv.scrape(), 'rallypoint_resumes_total', { result: 'expired' })).toBe(1);
  });

  it('resuming while the old connection is still open closes the old one with 4010', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: GRACE } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.next('peer-joined');

    const a2 = await srv.connect();
    const welcome = await a2.join('r', { resume: a.token });
    expect(welcome).toMatchObject({ id: a.id, resumed: true, peers: [{ id: b.id }] });
    expect((await a.client.closed).code).toBe(4010);

    // The replaced connection's close does not end the session.
    await srv.logs.waitFor((l) => l.msg === 'connection closed' && l.code === 4010);
    expect(srv.clock.pending().timeouts).toBe(0);
    await b.client.sync();
    expect(b.client.pending('peer-left')).toEqual([]);
    b.client.send({ type: 'signal', to: a.id, data: 'to the new one' });
    expect((await a2.next('signal')).data).toBe('to the new one');

    // The old token was rotated: it no longer resumes.
    const a3 = await srv.connect();
    const third = await a3.join('r', { resume: a.token });
    expect(third.resumed).toBe(false);
    expect(third.id).not.toBe(a.id);
  });

  it('does not resume into another room: a token for room r joined as room s starts a fresh session', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: GRACE } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.terminate();
    await srv.logs.closed(a.id);

    const other = await srv.connect();
    const welcome = await other.join('s', { resume: a.token });
    expect(welcome).toMatchObject({ room: 's', resumed: false, peers: [] });
    expect(welcome.id).not.toBe(a.id);
    // The original session is still waiting in r and can still be resumed there.
    const a2 = await srv.connect();
    expect(await a2.join('r', { resume: a.token })).toMatchObject({ id: a.id, resumed: true });
    await b.client.sync();
    expect(b.client.pending('peer-left')).toEqual([]);
  });

  it('queues at most resumeQueueLength signals for a disconnected peer', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: GRACE, resumeQueueLength: 2 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.terminate();
    await srv.logs.closed(a.id);
    for (let i = 0; i < 5; i++) b.client.send({ type: 'signal', to: a.id, data: i });
    await b.client.sync();

    const a2 = await srv.connect();
    await a2.join('r', { resume: a.token });
    b.client.send({ type: 'signal', to: a.id, data: 'live' });
    const got: unknown[] = [];
    for (let i = 0; i < 3; i++) got.push((await a2.next('signal')).data);
    expect(got).toEqual([0, 1, 'live']);
  });

  it('a deliberate close (1000) or leave ends the session at once: nothing left to resume', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: GRACE } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.close(1000);
    expect(await b.client.next('peer-left')).toMatchObject({ id: a.id, reason: 'closed' });
    const a2 = await srv.connect();
    expect((await a2.join('r', { resume: a.token })).resumed).toBe(false);

    const c = await srv.joined('r');
    c.client.send({ type: 'leave' });
    expect(await b.client.next('peer-left')).toMatchObject({ id: c.id, reason: 'left' });
    const c2 = await srv.connect();
    expect((await c2.join('r', { resume: c.token })).resumed).toBe(false);
  });

  it('a close frame without status code (1005, what a browser ws.close() sends) ends the session at once', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: GRACE } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.close();
    expect(await srv.logs.closed(a.id)).toMatchObject({ code: 1005 });
    expect(await b.client.next('peer-left')).toEqual({ type: 'peer-left', id: a.id, reason: 'closed' });
  });

  it('any other close (here: an application code 4321) keeps the session for resume', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: GRACE } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.close(4321);
    expect(await srv.logs.closed(a.id)).toMatchObject({ code: 4321 });
    await b.client.sync();
    expect(b.client.pending('peer-left')).toEqual([]);
    const a2 = await srv.connect();
    expect(await a2.join('r', { resume: a.token })).toMatchObject({ id: a.id, resumed: true });
  });

  it('with resumeGraceMs 0 a dropped peer leaves at once', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: 0 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    expect(a.client.received[0]).toMatchObject({ resume: { graceMs: 0 } });
    await a.client.terminate();
    expect(await b.client.next('peer-left')).toEqual({ type: 'peer-left', id: a.id, reason: 'closed' });
    expect(srv.clock.pending().timeouts).toBe(0);
  });
});

/** A store whose `members()` answers only when the test lets it (like a slow networked store). */
class SlowMembersStore implements RoomStore {
  gate: Deferred<void> | null = null;
  readonly asked = deferred();
  private readonly inner = new MemoryRoomStore({ maxPeersPerRoom: 8, maxRooms: 8 });

  async members(room: string): Promise<PeerInfo[]> {
    this.asked.resolve();
    if (this.gate) await this.gate.promise;
    return this.inner.members(room);
  }
  join(room: string, peer: PeerInfo, sink: Sink): JoinOutcome {
    return this.inner.join(room, peer, sink);
  }
  leave(room: string, id: string): boolean {
    return this.inner.leave(room, id);
  }
  sendTo(room: string, to: string, frame: string): boolean {
    return this.inner.sendTo(room, to, frame);
  }
  broadcast(room: string, frame: string, except?: string): void {
    this.inner.broadcast(room, frame, except);
  }
  stats(): { rooms: number; peers: number } {
    return this.inner.stats();
  }
  close(): void {
    this.inner.close();
  }
}

describe('resume with an asynchronous room store', () => {
  it('does not strand a session whose resuming connection drops while the store answers', async () => {
    const store = new SlowMembersStore();
    const srv = await startFakeClockServer({ store, limits: { resumeGraceMs: GRACE } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.terminate();
    await srv.logs.closed(a.id);

    store.gate = deferred();
    defer(() => store.gate?.resolve());
    const a2 = await srv.connect();
    a2.send({ type: 'join', room: 'r', resume: a.token });
    await store.asked.promise;
    await a2.terminate();
    await srv.logs.closeCount(2);
    store.gate.resolve();
    // A round trip on another connection lets the resume finish.
    await b.client.sync();

    // The session has no connection again: it gets a grace period, then leaves the room.
    expect(srv.clock.pending().timeouts).toBe(1);
    srv.clock.runTimeouts();
    expect(await b.client.next('peer-left')).toEqual({ type: 'peer-left', id: a.id, reason: 'closed' });
  });
});
