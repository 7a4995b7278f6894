/**
 * Every Redis key of the cluster has a TTL or a bound: after 1,000 join/leave cycles over
 * two nodes (leave, close, and lost connections that run out their grace) and a node
 * killed while it held members (with frames queued for them), once the TTLs pass Redis
 * holds only the cluster's own keys, the live nodes' and the live rooms', and nothing of
 * gone peers, rooms or nodes.
 */
import { once } from 'node:events';
import { afterEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SUBPROTOCOL } from '../../signaling/protocol/index.js';
import { killCliChildren } from '../helpers/cli.js';
import { type Node, startClusterNode, until } from '../helpers/cluster.js';
import { joinLogged, range } from '../helpers/peer-log.js';
import { describeRedis, startRedis, stopAllRedis } from '../helpers/redis.js';
import { cleanup } from '../helpers/resources.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
  await stopAllRedis();
});

const GRACE_MS = 1_000;
const CYCLES = 1_000;
const PARALLEL = 25;
const ROOMS = 40;
const LAPSED = 'node heartbeat lapsed: its peers wait for resume';

/** One cycle with a raw client: join `room` on `node`, then go away in one of three ways. */
async function cycle(node: Node, room: string, how: 'leave' | 'close' | 'drop'): Promise<void> {
  const ws = new WebSocket(node.wsUrl, SUBPROTOCOL);
  await once(ws, 'open');
  ws.send(JSON.stringify({ type: 'join', room }));
  const [data] = (await once(ws, 'message')) as [Buffer];
  const welcome = JSON.parse(data.toString()) as { type: string; id: string };
  if (welcome.type !== 'welcome') throw new Error(`join refused: ${data.toString()}`);
  const closed = once(ws, 'close');
  if (how === 'leave') {
    ws.send(JSON.stringify({ type: 'leave' }));
    ws.close(1000);
  } else if (how === 'close') ws.close(1000);
  // A lost connection: the session waits out its resume grace, then leaves.
  else ws.terminate();
  await closed;
}

async function keys(redis: { cli(...args: string[]): Promise<string> }): Promise<string[]> {
  return (await redis.cli('--scan'))
    .split('\n')
    .filter((k) => k !== '')
    .sort();
}

describeRedis('cluster keys in Redis', () => {
  it("after 1,000 join/leave cycles and a node killed with members, only the live nodes' and rooms' keys remain, each with a TTL or a bound", async () => {
    const redis = await startRedis();
    const flags = ['--resume-grace-ms', String(GRACE_MS), '--max-connections-per-ip', '0'];
    const [n1, n2, n3] = (await Promise.all(['n1', 'n2', 'n3'].map((id) => startClusterNode(redis.url, id, flags)))) as [Node, Node, Node];

    // Peers that stay: room `live` across n1 and n2; room `mixed` with L on n1 and two on n3.
    const l = await joinLogged(n1.wsUrl, 'live');
    const m = await joinLogged(n2.wsUrl, 'live');
    const lm = await joinLogged(n1.wsUrl, 'mixed');
    const doomed = [
      await joinLogged(n3.wsUrl, 'mixed', { reconnect: false }),
      await joinLogged(n3.wsUrl, 'mixed', { reconnect: false }),
      await joinLogged(n3.wsUrl, 'gone', { reconnect: false }),
      await joinLogged(n3.wsUrl, 'gone', { reconnect: false }),
    ];
    await until(() => lm.log.peers.size === 2, "L to see both of n3's peers in `mixed`");

    const started = Date.now();
    let next = 0;
    const ways = ['leave', 'close', 'drop'] as const;
    await Promise.all(
      range(PARALLEL).map(async () => {
        for (let i = next++; i < CYCLES; i = next++) await cycle(i % 2 === 0 ? n1 : n2, `k${i % ROOMS}`, ways[i % 3]!);
      }),
    );
    const cyclesMs = Date.now() - started;

    // n3 dies holding members; frames for them wait in their inboxes until the orphans end.
    const killedAt = Date.now();
    n3.child.kill('SIGKILL');
    // Sent before Redis saw n3's connections close, a frame would go to n3's (dead) socket.
    await until(() => doomed.every((p) => p.client.state === 'closed'), "n3's clients to see it die");
    for (const n of range(5)) for (const p of doomed.slice(0, 2)) lm.client.signal(p.id, { n });
    await until(async () => (await keys(redis)).some((k) => k.includes(':q:')), 'a frame queued for an orphan in Redis');
    await until(() => doomed.slice(0, 2).every((p) => lm.log.left.some((x) => x.id === p.id)), "n3's peers to leave `mixed`", 15_000);
    const lapsed = await Promise.race([n1, n2].map((n) => n.waitLog((e) => e.msg === LAPSED && e.dead === 'n3')));

    // Once the TTLs passed (emptied rooms' versions 5 s, orphan grace, node TTL, room leases):
    const live = ['live', 'mixed'];
    const expected = ['rp:{c}:epoch', 'rp:{c}:nodes', 'rp:{c}:rooms', 'rp:{n.n1}:rooms', 'rp:{n.n2}:rooms', ...live.flatMap((r) => [`rp:{r.${r}}:m`, `rp:{r.${r}}:v`])].sort();
    let left: string[] = [];
    await until(
      async () => {
        left = await keys(redis);
        return JSON.stringify(left) === JSON.stringify(expected);
      },
      'only the bounded keys to remain',
      20_000,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; left: ${left.join(' ')}`);
    });
    const settledMs = Date.now() - killedAt;

    // What each remaining key holds, and its TTL (-1: none, then it must be bounded).
    const ttl = async (k: string): Promise<number> => Number((await redis.cli('PTTL', k)).trim());
    const list = async (...args: string[]): Promise<string[]> =>
      (await redis.cli(...args))
        .split('\n')
        .filter((x) => x !== '')
        .sort();
    expect(await list('ZRANGE', 'rp:{c}:nodes', '0', '-1')).toEqual(['n1', 'n2']);
    expect(await ttl('rp:{c}:nodes')).toBe(-1);
    expect(await ttl('rp:{c}:epoch')).toBe(-1);
    expect((await redis.cli('STRLEN', 'rp:{c}:epoch')).trim()).toBe('16');
    expect(await list('ZRANGE', 'rp:{c}:rooms', '0', '-1')).toEqual(live);
    expect(await ttl('rp:{c}:rooms')).toBe(-1);
    expect(await list('SMEMBERS', 'rp:{n.n1}:rooms')).toEqual(['live', 'mixed']);
    expect(await list('SMEMBERS', 'rp:{n.n2}:rooms')).toEqual(['live']);
    expect(await list('HKEYS', 'rp:{r.live}:m')).toEqual([l.id, m.id].sort());
    expect(await list('HKEYS', 'rp:{r.mixed}:m')).toEqual([lm.id]);
    for (const k of ['rp:{n.n1}:rooms', 'rp:{n.n2}:rooms', 'rp:{r.live}:m', 'rp:{r.live}:v', 'rp:{r.mixed}:m', 'rp:{r.mixed}:v']) {
      const t = await ttl(k);
      expect(t, k).toBeGreaterThan(0);
      expect(t, k).toBeLessThanOrEqual(60_000);
    }

    // And the survivors still work: a signal across nodes in the live room.
    l.client.signal(m.id, { n: 0 });
    await until(() => m.log.seqFrom(l.id).length === 1, 'a signal from n1 to n2');

    console.log(
      `keys figures: ${CYCLES} cycles (${PARALLEL} in parallel) in ${cyclesMs} ms; n3 detected ${Number(lapsed.time) - killedAt} ms after its kill; only bounded keys left ${settledMs} ms after it`,
    );
  }, 60_000);
});
