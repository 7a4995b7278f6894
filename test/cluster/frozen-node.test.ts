/**
 * A node frozen with SIGSTOP (a stalled VM, a GC pause gone wrong): the other nodes' joins
 * and signals do not wait for it, no frame between them goes to it, and when it comes back
 * after being taken for dead it takes back only what nobody resumed elsewhere.
 */
import { afterEach, expect, it } from 'vitest';
import { killCliChildren } from '../helpers/cli.js';
import { type Node, startClusterNode, until } from '../helpers/cluster.js';
import { describeRedis, type RedisServer, startRedis, stopAllRedis } from '../helpers/redis.js';
import { cleanup, defer } from '../helpers/resources.js';
import { TestClient } from '../helpers/ws-client.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
  await stopAllRedis();
});

async function spublishCalls(redis: RedisServer): Promise<number> {
  const stats = await redis.cli('INFO', 'commandstats');
  return Number(/cmdstat_spublish:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

/** The next signal `c` gets from `from`. */
async function signalFrom(c: TestClient, from: string): Promise<unknown> {
  for (;;) {
    const m = await c.next('signal');
    if (m.from === from) return m.data;
  }
}

describeRedis('a frozen node', () => {
  it('does not slow the others, gets nothing of their traffic, and on waking takes back only what nobody resumed', async () => {
    const redis = await startRedis();
    const [n1, n2, n3]: [Node, Node, Node] = await Promise.all([startClusterNode(redis.url, 'n1'), startClusterNode(redis.url, 'n2'), startClusterNode(redis.url, 'n3')]);
    const a = await TestClient.connect(n1.wsUrl);
    const aW = await a.join('r');
    const b = await TestClient.connect(n2.wsUrl);
    const bW = await b.join('r');
    const c = await TestClient.connect(n3.wsUrl);
    const cW = await c.join('r');
    const d = await TestClient.connect(n3.wsUrl);
    const dW = await d.join('r');

    process.kill(n3.child.pid!, 'SIGSTOP');
    defer(() => void (n3.child.exitCode === null && process.kill(n3.child.pid!, 'SIGCONT')));

    // Joins and signals between n1 and n2 while n3 is frozen: each prompt.
    let slowest = 0;
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const x = await TestClient.connect((i % 2 ? n1 : n2).wsUrl);
      const w = await x.join('r');
      expect(w.peers.map((p) => p.id)).toEqual(expect.arrayContaining([aW.id, bW.id, cW.id, dW.id]));
      a.send({ type: 'signal', to: bW.id, data: { ping: i } });
      expect(await signalFrom(b, aW.id)).toEqual({ ping: i });
      slowest = Math.max(slowest, performance.now() - t0);
      x.send({ type: 'leave' });
    }
    expect(slowest).toBeLessThan(2_000);

    // A frame from n1 to n2 is one SPUBLISH to n2's channel: nothing goes to every node.
    const before = await spublishCalls(redis);
    for (let i = 0; i < 100; i++) a.send({ type: 'signal', to: bW.id, data: { n: i } });
    for (let i = 0; i < 100; i++) await signalFrom(b, aW.id);
    const published = (await spublishCalls(redis)) - before;
    // 100 frames, plus the live nodes' keepalives (one per node per second) meanwhile.
    expect(published).toBeGreaterThanOrEqual(100);
    expect(published).toBeLessThan(110);

    // n3 is taken for dead: its peers become orphans, still members in their grace.
    await until(() => [n1, n2].some((n) => n.logs.some((e) => e.dead === 'n3')), 'n3 taken for dead', 10_000);
    // D's client gives its frozen connection up and resumes on n1 (same id).
    const d2 = await TestClient.connect(n1.wsUrl);
    const resumed = await d2.join('r', { resume: dW.resume.token });
    expect(resumed).toMatchObject({ id: dW.id, resumed: true });

    process.kill(n3.child.pid!, 'SIGCONT');
    // n3 lets D go (its old connection is closed: replaced) and takes C back.
    const dClose = await d.closed;
    expect([4010, 1012]).toContain(dClose.code);
    // Probe until one arrives. Looked up in everything C received, not awaited with next():
    // a probe lost while n3 was taking C back would leave a waiter behind, and each later
    // probe would go to the oldest waiter, never to the newest one the check looks at.
    const probeArrived = () => c.received.some((m) => m.type === 'signal' && m.from === aW.id && m.data === 'back?');
    await until(
      () => {
        if (probeArrived()) return true;
        a.send({ type: 'signal', to: cW.id, data: 'back?' });
        return false;
      },
      'C reachable on n3 again',
      10_000,
    );
    // D answers on n1; nobody saw C or D leave; a newcomer sees each of them once.
    a.send({ type: 'signal', to: dW.id, data: 'still there' });
    expect(await signalFrom(d2, aW.id)).toBe('still there');
    const e = await TestClient.connect(n2.wsUrl);
    const eW = await e.join('r');
    const ids = eW.peers.map((p) => p.id);
    expect(ids.filter((id) => id === cW.id || id === dW.id).sort()).toEqual([cW.id, dW.id].sort());
    for (const seen of [a, b]) expect(seen.received.some((m) => m.type === 'peer-left' && (m.id === cW.id || m.id === dW.id))).toBe(false);
    expect(n3.child.exitCode).toBeNull();
  });
});
