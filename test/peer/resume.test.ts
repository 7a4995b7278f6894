/**
 * A peer whose signaling connection drops and resumes (same id) catches up with the room.
 * What the server queues for a peer in its grace period is bounded (resumeQueueLength), and
 * a cluster node that died queued nothing at all: the resumed `welcome` lists the current
 * peers (signaling/PROTOCOL.md, Resume), and the room must act on it: connect to who came,
 * drop who went.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ExponentialBackoff, joinRoom, type Room } from '../../peer/node.js';
import { listenSignaling } from '../../signaling/server/index.js';
import { until as poll } from '../helpers/cluster.js';
import { startGate } from '../helpers/gate.js';
import { cleanup, defer } from '../helpers/resources.js';
import { waitConnected } from './helpers.js';

afterEach(cleanup);

/** c's first offer to a is lost (nothing is queued): c tries again after attemptTimeoutMs. */
const FAST = {
  fallback: { afterMs: 400 },
  restart: { disconnectedGraceMs: 200, baseDelayMs: 100, maxDelayMs: 400, attemptTimeoutMs: 1_500 },
};

async function join(url: string, room: string, reconnect = false): Promise<Room> {
  const r = await joinRoom({ url, room, ...FAST, ...(reconnect ? { reconnect: new ExponentialBackoff({ baseMs: 50, capMs: 200, maxAttempts: 1_000 }) } : {}) });
  defer(() => r.leave());
  return r;
}

describe('a resumed peer catches up with the room', () => {
  it('connects to a peer that joined while it was away and drops one that left meanwhile, with nothing queued for it', async () => {
    // resumeQueueLength 0: no peer-left, peer-joined or signal waits for a; the welcome alone tells.
    const server = await listenSignaling({ port: 0, host: '127.0.0.1', logger: false, limits: { maxConnectionsPerIp: 0, resumeQueueLength: 0 } });
    defer(() => server.close());
    const gate = await startGate(server.port);
    const a = await join(gate.wsUrl, 'catch-up', true);
    const b = await join(server.wsUrl, 'catch-up');
    await Promise.all([waitConnected(a, 1), waitConnected(b, 1)]);
    const left: string[] = [];
    const errors: string[] = [];
    a.on('peer-left', (p, reason) => left.push(`${p.id} ${reason}`));
    a.on('error', (err) => errors.push(`${err.code} ${err.message}`));

    // a's signaling connection drops and cannot come back yet; the server notices at once
    // (the gate ends both sides) and keeps a's session for its grace period.
    gate.open = false;
    gate.cut();
    await poll(() => server.server.connectionCount === 1, 'the server to see a gone');
    // Meanwhile b leaves and c joins: c offers to a (a is still a member, in its grace period).
    await b.leave();
    const c = await join(server.wsUrl, 'catch-up');
    expect(c.peers.has(a.id)).toBe(true);

    const id = a.id;
    gate.open = true;
    await Promise.all([waitConnected(a, 1), waitConnected(c, 1)]);
    expect(a.id).toBe(id);
    expect([...a.peers.keys()]).toEqual([c.id]);
    expect(left).toEqual([`${b.id} closed`]);
    expect(errors).toEqual([]);
  });
});
