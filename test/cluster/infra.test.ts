/**
 * The cluster tests' own infrastructure, checked with real processes: Redis (standalone and
 * a 3-master Redis Cluster) and the documented nginx config in front of `rallypoint serve`.
 */
import { readFile } from 'node:fs/promises';
import { createClient, createCluster } from 'redis';
import { afterEach, describe, expect, it } from 'vitest';
import { startRedis, startRedisCluster, stopAllRedis } from '../helpers/redis.js';

afterEach(stopAllRedis);

describe('test Redis (test/helpers/redis.ts)', () => {
  it('starts empty on a free port, answers, and restarts on the same port without its keys', async () => {
    const redis = await startRedis();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect((await redis.cli('PING')).trim()).toBe('PONG');
    expect((await redis.cli('CONFIG', 'GET', 'save')).split('\n').map((l) => l.trim())).toEqual(['save', '', '']);
    expect((await redis.cli('CONFIG', 'GET', 'appendonly')).split('\n')[1]?.trim()).toBe('no');

    const client = createClient({ url: redis.url });
    client.on('error', () => {}); // the kill below drops its connection
    await client.connect();
    await client.set('k', 'v');
    expect(await client.get('k')).toBe('v');
    client.destroy();

    const oldPid = redis.pid;
    await redis.kill('SIGKILL');
    await expect(redis.cli('PING')).rejects.toThrow();
    await redis.restart();
    expect(redis.pid).not.toBe(oldPid);
    expect((await redis.cli('PING')).trim()).toBe('PONG');
    // No persistence: the restarted server is empty.
    expect((await redis.cli('EXISTS', 'k')).trim()).toBe('0');
    expect((await redis.cli('DBSIZE')).trim()).toBe('0');

    await redis.stop();
    await redis.stop(); // idempotent
    await expect(redis.cli('PING')).rejects.toThrow();
    expect(() => process.kill(redis.pid, 0)).toThrow(); // the process is gone
  });

  it('a frozen server is stopped and answers once thawed', async () => {
    const redis = await startRedis();
    const client = createClient({ url: redis.url });
    client.on('error', () => {});
    await client.connect();
    redis.freeze();
    const pending = client.ping();
    // State T in /proc/PID/stat: stopped by a signal, its socket still open.
    expect(await procState(redis.pid)).toBe('T');
    redis.thaw();
    expect(await pending).toBe('PONG');
    client.destroy();
  });

  it('restart() on a port given to startRedis works after stop() too', async () => {
    const first = await startRedis();
    const port = first.port;
    await first.stop();
    const again = await startRedis({ port });
    expect(again.port).toBe(port);
    await again.cli('SET', 'x', '1');
    await again.stop();
    await again.restart();
    expect((await again.cli('GET', 'x')).trim()).toBe('');
  });

  it('a 3-master cluster reaches cluster_state:ok; node-redis createCluster sets keys on every shard and uses sharded pub/sub', async () => {
    const cluster = await startRedisCluster({ masters: 3 });
    expect(cluster.nodes).toHaveLength(3);
    for (const node of cluster.nodes) {
      const info = await node.cli('CLUSTER', 'INFO');
      expect(info).toMatch(/^cluster_state:ok\r?$/m);
      expect(info).toMatch(/^cluster_known_nodes:3\r?$/m);
      expect(info).toMatch(/^cluster_slots_assigned:16384\r?$/m);
    }

    const client = createCluster({ rootNodes: cluster.rootNodes });
    client.on('error', () => {});
    await client.connect();
    // Keys with different hash tags, found on different masters by their slots.
    const tags = ['room-a', 'room-b', 'room-c', 'room-d', 'room-e', 'room-f'];
    for (const tag of tags) await client.set(`{${tag}}:k`, tag);
    for (const tag of tags) expect(await client.get(`{${tag}}:k`)).toBe(tag);
    const owners = new Set<number>();
    for (const tag of tags) {
      for (const node of cluster.nodes) {
        if ((await node.cli('EXISTS', `{${tag}}:k`)).trim() === '1') owners.add(node.port);
      }
    }
    expect(owners.size).toBeGreaterThan(1);

    const sub = client.duplicate();
    sub.on('error', () => {});
    await sub.connect();
    const got: string[] = [];
    let heard: () => void = () => {};
    const gotTwo = new Promise<void>((resolve) => (heard = resolve));
    // Resolves once the shard owning the channel's slot confirmed the subscription.
    await sub.sSubscribe('{room-a}:events', (message) => {
      got.push(message);
      if (got.length === 2) heard();
    });
    expect(await client.sPublish('{room-a}:events', 'one')).toBe(1);
    expect(await client.sPublish('{room-a}:events', 'two')).toBe(1);
    await gotTwo;
    expect(got).toEqual(['one', 'two']);
    sub.destroy();
    client.destroy();
  });
});


/** The state letter of /proc/PID/stat (R, S, T, ...). */
async function procState(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}
