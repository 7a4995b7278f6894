/**
 * The cluster store on a Redis Cluster (3 masters started by the test): a room's keys and
 * channel share its hash tag, so its scripts run on one shard; node channels and the
 * cluster's own keys live on others. Everything of the standalone case works the same.
 */
import { afterEach, expect, it } from 'vitest';
import { killCliChildren } from '../helpers/cli.js';
import { type Node, startBalancer, startClusterNode, until } from '../helpers/cluster.js';
import { describeRedis, startRedisCluster, stopAllRedis } from '../helpers/redis.js';
import { cleanup } from '../helpers/resources.js';
import { TestClient } from '../helpers/ws-client.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
  await stopAllRedis();
});

describeRedis('on a Redis Cluster', () => {
  it("rooms on every shard work across nodes, and a killed node's peers resume on the survivor", async () => {
    const rc = await startRedisCluster({ masters: 3 });
    const urls = rc.rootNodes.map((n) => n.url).join(',');
    const args = ['--redis-cluster', 'on', '--resume-grace-ms', '20000'];
    const [n1, n2]: [Node, Node] = await Promise.all([startClusterNode(urls, 'n1', args), startClusterNode(urls, 'n2', args)]);
    // Rooms whose tags land on different masters (checked below with CLUSTER KEYSLOT).
    const rooms = ['lobby', 'arena', 'castle', 'dock', 'forest', 'harbor'];
    const slots = await Promise.all(rooms.map(async (r) => Number((await rc.nodes[0]!.cli('CLUSTER', 'KEYSLOT', `{r.${r}}`)).trim())));
    const shards = new Set(slots.map((s) => Math.floor(s / (16384 / 3))));
    expect(shards.size).toBeGreaterThan(1);

    const pairs: { room: string; a: TestClient; aId: string; b: TestClient; bId: string }[] = [];
    for (const room of rooms) {
      const a = await TestClient.connect(n1.wsUrl);
      const aId = (await a.join(room)).id;
      const b = await TestClient.connect(n2.wsUrl);
      const bw = await b.join(room);
      expect(bw.peers.map((p) => p.id)).toEqual([aId]);
      expect((await a.next('peer-joined')).peer.id).toBe(bw.id);
      pairs.push({ room, a, aId, b, bId: bw.id });
    }
    for (const p of pairs) {
      for (let i = 0; i < 20; i++) {
        p.a.send({ type: 'signal', to: p.bId, data: { i } });
        p.a.send({ type: 'relay', to: p.bId, channel: 'reliable', data: `m${i}`, seq: i });
      }
    }
    for (const p of pairs) {
      const signals: number[] = [];
      const relays: number[] = [];
      while (signals.length < 20 || relays.length < 20) {
        const m = await p.b.next();
        if (m.type === 'signal') signals.push((m.data as { i: number }).i);
        if (m.type === 'relay') relays.push(m.seq ?? -1);
      }
      expect(signals).toEqual([...Array(20).keys()]);
      expect(relays).toEqual([...Array(20).keys()]);
    }
    pairs[0]!.b.send({ type: 'leave' });
    expect(await pairs[0]!.a.next('peer-left')).toMatchObject({ id: pairs[0]!.bId, reason: 'left' });

    // SIGKILL n2; the peers it held resume on n1 with their ids, through a balancer, and the
    // signals sent to them meanwhile arrive; nobody sees them leave.
    const lb = await startBalancer([n1.port]);
    const moved = pairs.slice(1);
    const tokens = new Map<string, string>();
    for (const p of moved) {
      // The token of the welcome each b got on n2.
      const w = p.b.received.find((m) => m.type === 'welcome');
      if (w?.type === 'welcome') tokens.set(p.room, w.resume.token);
    }
    n2.child.kill('SIGKILL');
    await Promise.all(moved.map((p) => p.b.closed));
    for (const p of moved) p.a.send({ type: 'signal', to: p.bId, data: 'while away' });
    await until(() => n1.logs.some((e) => e.dead === 'n2'), 'n2 taken for dead', 10_000);
    for (const p of moved) {
      const b2 = await TestClient.connect(lb.wsUrl);
      const w = await b2.join(p.room, { resume: tokens.get(p.room) });
      expect(w).toMatchObject({ id: p.bId, resumed: true });
      expect((await b2.next('signal')).data).toBe('while away');
      expect(p.a.received.some((m) => m.type === 'peer-left')).toBe(false);
    }
    // Three Redis masters, two node processes and a node-death detection: ~8 s alone, more
    // than the 20 s default when the whole suite shares two cores (as the other cluster tests).
  }, 60_000);
});
