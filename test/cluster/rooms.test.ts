/**
 * Rooms over several nodes (issue: cluster mode): real `rallypoint serve --redis` processes
 * on a real Debian redis-server. Peers on different nodes see each other, their signals and
 * relay frames cross in order with the same validation and errors, and the limits that are
 * per room or per cluster hold across nodes, atomically.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { ServerMessage } from '../../signaling/protocol/index.js';
import { killCliChildren } from '../helpers/cli.js';
import { type Node, startClusterNode, until } from '../helpers/cluster.js';
import { httpGet } from '../helpers/http.js';
import { describeRedis, type RedisServer, startRedis, stopAllRedis } from '../helpers/redis.js';
import { cleanup } from '../helpers/resources.js';
import { TestClient } from '../helpers/ws-client.js';

let redis: RedisServer;
beforeEach(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await cleanup();
  killCliChildren();
  await stopAllRedis();
});

async function twoNodes(extra: string[] = []): Promise<[Node, Node]> {
  return Promise.all([startClusterNode(redis.url, 'n1', extra), startClusterNode(redis.url, 'n2', extra)]);
}

async function joined(node: Node, room: string, meta?: Record<string, unknown>): Promise<{ c: TestClient; id: string; peers: string[] }> {
  const c = await TestClient.connect(node.wsUrl);
  const w = await c.join(room, meta ? { meta } : {});
  return { c, id: w.id, peers: w.peers.map((p) => p.id) };
}

/** The first frame of `type` for which `match` holds, skipping others of that type. */
async function nextMatching<T extends ServerMessage['type']>(c: TestClient, type: T, match: (m: Extract<ServerMessage, { type: T }>) => boolean): Promise<Extract<ServerMessage, { type: T }>> {
  for (;;) {
    const m = (await c.next(type)) as Extract<ServerMessage, { type: T }>;
    if (match(m)) return m;
  }
}

describeRedis('rooms across nodes', () => {
  it('peers on different nodes see each other in welcome.peers, peer-joined and peer-left', async () => {
    const [n1, n2] = await twoNodes();
    const a = await joined(n1, 'lobby', { name: 'a' });
    const b = await joined(n2, 'lobby', { name: 'b' });
    expect(b.peers).toEqual([a.id]);
    const joinedB = await a.c.next('peer-joined');
    expect(joinedB.peer).toEqual({ id: b.id, meta: { name: 'b' } });
    const c = await joined(n1, 'lobby');
    expect(new Set(c.peers)).toEqual(new Set([a.id, b.id]));
    // The welcome of a peer on another node carries the meta as given.
    const cWelcomeMeta = (await TestClient.connect(n2.wsUrl).then((x) => x.join('lobby'))).peers.find((p) => p.id === a.id);
    expect(cWelcomeMeta).toEqual({ id: a.id, meta: { name: 'a' } });
    expect((await nextMatching(b.c, 'peer-joined', (m) => m.peer.id === c.id)).peer.id).toBe(c.id);
    b.c.send({ type: 'leave' });
    expect(await nextMatching(a.c, 'peer-left', (m) => m.id === b.id)).toMatchObject({ id: b.id, reason: 'left' });
    expect(await nextMatching(c.c, 'peer-left', (m) => m.id === b.id)).toMatchObject({ id: b.id, reason: 'left' });
    // A closed connection is a peer-left too (after the grace period for a lost one; 1000 at once).
    await c.c.close(1000);
    expect(await nextMatching(a.c, 'peer-left', (m) => m.id === c.id)).toMatchObject({ id: c.id, reason: 'closed' });
  });

  it('signals and relay frames cross nodes in order per sender, with from stamped', async () => {
    const [n1, n2] = await twoNodes(['--messages-per-second', '5000', '--message-burst', '5000', '--relay-messages-per-second', '5000', '--relay-message-burst', '5000']);
    const a = await joined(n1, 'order');
    const b = await joined(n2, 'order');
    const N = 400;
    for (let i = 0; i < N; i++) {
      a.c.send({ type: 'signal', to: b.id, data: { i } });
      a.c.send({ type: 'relay', to: b.id, channel: 'reliable', data: `m${i}`, seq: i });
    }
    const signals: number[] = [];
    const relays: number[] = [];
    for (let k = 0; k < 2 * N; k++) {
      const m = await b.c.next();
      if (m.type === 'signal') {
        expect(m.from).toBe(a.id);
        signals.push((m.data as { i: number }).i);
      } else if (m.type === 'relay') {
        expect(m).toMatchObject({ from: a.id, channel: 'reliable', data: `m${m.seq ?? -1}` });
        relays.push(m.seq ?? -1);
      } else k--;
    }
    const inOrder = Array.from({ length: N }, (_, i) => i);
    expect(signals).toEqual(inOrder);
    expect(relays).toEqual(inOrder);
  });

  it('the same validation and errors apply across nodes: peer-not-found when the target is in no node', async () => {
    const [n1, n2] = await twoNodes(['--messages-per-second', '2', '--message-burst', '4']);
    const a = await joined(n1, 'errs');
    const b = await joined(n2, 'errs');
    expect(await a.c.expectError({ type: 'signal', to: 'nobody-anywhere', data: 1, ref: 'r1' })).toMatchObject({ code: 'peer-not-found', ref: 'r1' });
    expect(await a.c.expectError({ type: 'relay', to: 'nobody-anywhere', channel: 'reliable', data: 'x', ref: 'r2' })).toMatchObject({ code: 'peer-not-found', ref: 'r2' });
    // A peer of another room, on the other node, is not reachable either.
    const other = await joined(n2, 'elsewhere');
    expect(await a.c.expectError({ type: 'signal', to: other.id, data: 1, ref: 'r3' })).toMatchObject({ code: 'peer-not-found', ref: 'r3' });
    // The sender's own node enforces its rate limit whatever node the target is on.
    const codes: string[] = [];
    for (let i = 0; i < 8; i++) a.c.send({ type: 'signal', to: b.id, data: i });
    for (;;) {
      const m = await a.c.next('error').catch(() => null);
      if (!m) break;
      codes.push(m.code);
      if (m.code === 'rate-limited') break;
    }
    expect(codes).toContain('rate-limited');
    // A left peer is gone everywhere: signals to it are refused by the other node too.
    b.c.send({ type: 'leave' });
    await nextMatching(a.c, 'peer-left', (m) => m.id === b.id);
  });

  it('maxPeersPerRoom holds across nodes: two nodes admitting the last slot at once admit one', async () => {
    const [n1, n2] = await twoNodes(['--max-peers-per-room', '2']);
    for (let round = 0; round < 15; round++) {
      const room = `full-${round}`;
      await joined(n1, room);
      const [x, y] = await Promise.all([TestClient.connect(n1.wsUrl), TestClient.connect(n2.wsUrl)]);
      x.send({ type: 'join', room });
      y.send({ type: 'join', room });
      const outcomes = await Promise.all([x.next(), y.next()]);
      const kinds = outcomes.map((m) => (m.type === 'welcome' ? 'welcome' : m.type === 'error' ? m.code : m.type)).sort();
      expect(kinds, `round ${round}`).toEqual(['room-full', 'welcome']);
    }
  });

  it('maxRooms holds across the cluster, atomically, and an emptied room stops counting within its lease', async () => {
    const [n1, n2] = await twoNodes(['--max-rooms', '3']);
    await joined(n1, 'r1');
    const r2 = await joined(n2, 'r2');
    const [x, y] = await Promise.all([TestClient.connect(n1.wsUrl), TestClient.connect(n2.wsUrl)]);
    x.send({ type: 'join', room: 'r3' });
    y.send({ type: 'join', room: 'r4' });
    const kinds = (await Promise.all([x.next(), y.next()])).map((m) => (m.type === 'welcome' ? 'welcome' : m.type === 'error' ? m.code : m.type)).sort();
    expect(kinds).toEqual(['too-many-rooms', 'welcome']);
    // A fourth room is refused on either node while three live...
    const z = await TestClient.connect(n1.wsUrl);
    expect(await z.expectError({ type: 'join', room: 'r5' })).toMatchObject({ code: 'too-many-rooms' });
    // ...and admitted once one of them emptied and its lease lapsed (nodeTtlMs + 2 heartbeats).
    r2.c.send({ type: 'leave' });
    await until(
      async () => {
        const t = await TestClient.connect(n2.wsUrl);
        t.send({ type: 'join', room: 'r6' });
        const m = await t.next();
        await t.close();
        return m.type === 'welcome';
      },
      'an emptied room to stop counting',
      10_000,
    );
    // Not at once: the lease outlives the room by up to nodeTtlMs + 2 heartbeats.
  });

  it('/metrics per node: Redis round trip, published and received messages, nodes seen, degraded', async () => {
    const [n1, n2] = await twoNodes();
    const a = await joined(n1, 'm');
    const b = await joined(n2, 'm');
    for (let i = 0; i < 20; i++) a.c.send({ type: 'signal', to: b.id, data: i });
    for (let i = 0; i < 20; i++) await b.c.next('signal');
    const metric = (text: string, name: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
    };
    await until(async () => metric((await httpGet(`http://127.0.0.1:${n1.port}/metrics`)).body, 'rallypoint_cluster_nodes') === 2, 'both nodes seen');
    const m1 = (await httpGet(`http://127.0.0.1:${n1.port}/metrics`)).body;
    const m2 = (await httpGet(`http://127.0.0.1:${n2.port}/metrics`)).body;
    expect(metric(m1, 'rallypoint_cluster_published_total')).toBeGreaterThanOrEqual(20);
    expect(metric(m2, 'rallypoint_cluster_received_total')).toBeGreaterThanOrEqual(20);
    expect(metric(m1, 'rallypoint_cluster_degraded')).toBe(0);
    expect(metric(m2, 'rallypoint_cluster_redis_rtt_seconds_count')).toBeGreaterThan(0);
    expect(metric(m1, 'rallypoint_cluster_outbox_frames')).toBe(0);
  });
});
