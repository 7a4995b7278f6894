/**
 * Messages of one connection are handled in order; while an async store answers, later
 * messages queue on `conn.pending`. Only the first tail used to clear it: once a second
 * message had queued behind an async one, `pending` never returned to null and every later
 * frame of the connection took the promise path (a performance cliff on the relay path).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CLOSE_CODES } from '../../signaling/protocol/index.js';
import type { Connection } from '../../signaling/server/connection.js';
import { type JoinOutcome, type MaybePromise, MemoryRoomStore, type RelayDelivery, type RoomStore, type Sink } from '../../signaling/server/index.js';
import { cleanup } from '../helpers/resources.js';
import { startFakeClockServer, startServer, type TestServer } from '../helpers/server.js';

afterEach(cleanup);

/** In-memory rooms whose join answers on a later turn, like a networked store would. */
class AsyncJoinStore implements RoomStore {
  private readonly rooms = new MemoryRoomStore({ maxPeersPerRoom: 8, maxRooms: 10 });

  async join(room: string, peer: { id: string; meta?: Record<string, unknown> }, sink: Sink): Promise<JoinOutcome> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    return this.rooms.join(room, peer, sink);
  }

  leave(room: string, id: string): MaybePromise<boolean> {
    return this.rooms.leave(room, id);
  }

  members(room: string): ReturnType<MemoryRoomStore['members']> {
    return this.rooms.members(room);
  }

  sendTo(room: string, to: string, frame: string, relay?: RelayDelivery): MaybePromise<boolean> {
    return this.rooms.sendTo(room, to, frame, relay);
  }

  broadcast(room: string, frame: string, except?: string): MaybePromise<void> {
    return this.rooms.broadcast(room, frame, except);
  }

  stats(): { rooms: number; peers: number } {
    return this.rooms.stats();
  }

  close(): MaybePromise<void> {
    return this.rooms.close();
  }
}

/** AsyncJoinStore whose joins wait, while `hold()` is in force, until `release()`. */
class GatedJoinStore extends AsyncJoinStore {
  private gate: Promise<void> | null = null;
  private open: () => void = () => undefined;
  joinsWaiting = 0;
  private waiting: (() => void) | null = null;

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.gate = null;
    this.open();
  }

  /** Resolves once a join is waiting at the gate. */
  joinArrived(): Promise<void> {
    return this.joinsWaiting > 0 ? Promise.resolve() : new Promise((resolve) => (this.waiting = resolve));
  }

  override async join(room: string, peer: { id: string; meta?: Record<string, unknown> }, sink: Sink): Promise<JoinOutcome> {
    if (this.gate) {
      this.joinsWaiting++;
      this.waiting?.();
      await this.gate;
    }
    return super.join(room, peer, sink);
  }
}

/** The server's connections (private; read for this white-box check only). */
const connectionsOf = (srv: TestServer): Set<Connection> => (srv.server as unknown as { connections: Set<Connection> }).connections;

describe('message chain of a connection', () => {
  it('returns to synchronous dispatch once the async work it queued behind is done', async () => {
    const srv = await startServer({ store: new AsyncJoinStore() });
    const a = await srv.joined('r');
    const b = await srv.connect();
    // join (async) and two signals that queue behind it: three tails on one chain.
    b.send({ type: 'join', room: 'r' });
    b.send({ type: 'signal', to: a.id, data: 1 });
    b.send({ type: 'signal', to: a.id, data: 2 });
    await b.next('welcome');
    expect((await a.client.next('signal')).data).toBe(1);
    expect((await a.client.next('signal')).data).toBe(2);
    await b.sync();
    const conns = [...connectionsOf(srv)];
    expect(conns).toHaveLength(2);
    for (const conn of conns) expect(conn.pending).toBeNull();
    // And the next signal is handled in the same turn as its frame, not on the chain.
    b.send({ type: 'signal', to: a.id, data: 3 });
    expect((await a.client.next('signal')).data).toBe(3);
    for (const conn of conns) expect(conn.pending).toBeNull();
  });
});

describe('a join that completes after its connection started closing', () => {
  it('announces no ghost peer: no peer-joined, and the store lets it go', async () => {
    const store = new GatedJoinStore();
    const srv = await startFakeClockServer({ store });
    const a = await srv.joined('r');
    const b = await srv.connect();
    store.hold();
    b.send({ type: 'join', room: 'r' });
    await store.joinArrived();
    // The join deadline fires while the store answers: the connection is CLOSING, not closed.
    expect(srv.clock.runTimeouts()).toBeGreaterThan(0);
    const conn = [...connectionsOf(srv)].find((c) => c.session === null)!;
    expect(conn.closed).toBe(false);
    store.release();
    expect((await b.closed).code).toBe(CLOSE_CODES.joinTimeout);
    await a.client.sync();
    expect(a.client.pending('peer-joined')).toEqual([]);
    expect(store.stats().peers).toBe(1);
    expect(srv.server.sessions.size).toBe(1);
  });
});
