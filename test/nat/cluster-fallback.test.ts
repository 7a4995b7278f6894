/**
 * NAT lab across cluster nodes: the scenario of test/nat/fallback.test.ts with the server side
 * split in two. Redis and two `rallypoint serve --redis` nodes (each with its embedded TURN)
 * run in the public namespace; peer A signals through node n0, peer B through node n1, each
 * behind its own port-restricted cone NAT. Everything the peers say to each other (offers,
 * answers, candidates, relayed channel data) crosses from one node to the other over Redis.
 *
 * With both sites' UDP blocked the pair falls back to the WebSocket: the relay frames go
 * A -> n0 -> Redis -> n1 -> B and back. Once UDP is back the pair moves to a direct (or TURN)
 * path, the signaling for it crossing the nodes too, and the reliable stream is complete,
 * in order and without duplicates across both switches.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { BURSTS, FAST_FALLBACK, type FallbackPeer, FallbackSession, type Path, peerView, pump, received, relayedMessages } from '../helpers/nat-fallback.js';
import { embeddedTurnArgs, LineProcess, type Serve, startServe, type TwoSites, twoSites, within } from '../helpers/nat-lab.js';
import { describeNetns, type Netns, useNetLab } from '../helpers/netns.js';
import { describeRedis, REDIS_SERVER, redisMissing } from '../helpers/redis.js';

const lab = useNetLab();
const BALANCER = fileURLToPath(new URL('../fixtures/nat/balancer.mjs', import.meta.url));

/** As in test/nat/fallback.test.ts: generous bounds for a loaded 2-core machine. */
const FALLBACK_MS = 15_000;
const RETURN_MS = 30_000;

/** Redis needs root for the lab anyway; outside CI a missing redis-server skips with its reason. */
const describeLab = redisMissing() ? describeRedis : describeNetns;

/** Debian's redis-server in `ns` on 127.0.0.1:6379 (the namespace's own loopback), no persistence. */
async function startRedisIn(ns: Netns): Promise<{ proc: LineProcess; url: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'rallypoint-nat-redis-'));
  const proc = new LineProcess(
    `redis@${ns.name}`,
    ns.spawn(REDIS_SERVER, ['--port', '6379', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', '--daemonize', 'no', '--logfile', '']),
  );
  await within(
    proc.next<{ line: string }>('text', (m) => /Ready to accept connections/.test(m.line)),
    10_000,
    () => `redis did not start in ${ns.name}: ${proc.stderr}`,
  );
  return { proc, url: 'redis://127.0.0.1:6379', dir };
}

/** The body of `url`, fetched inside `ns`. */
async function fetchIn(ns: Netns, url: string): Promise<string> {
  const script = `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(e); process.exit(1); })`;
  return (await ns.exec(process.execPath, ['-e', script])).stdout;
}

/** `/healthz` of a node. */
async function healthIn(ns: Netns, node: Serve): Promise<{ status: string; connections: number; peers: number }> {
  return JSON.parse(await fetchIn(ns, `${node.httpUrl}/healthz`)) as { status: string; connections: number; peers: number };
}

/** `rallypoint_cluster_adopted_nodes_total` of a node: dead nodes it took the members of. */
async function adoptedIn(ns: Netns, node: Serve): Promise<number> {
  const m = /^rallypoint_cluster_adopted_nodes_total (\d+)$/m.exec(await fetchIn(ns, `${node.httpUrl}/metrics`));
  return m ? Number(m[1]) : 0;
}

/** The TCP balancer fixture (test/fixtures/nat/balancer.mjs) in `ns` on `host`, round-robin over `nodes`. */
async function startBalancerIn(ns: Netns, host: string, nodes: Serve[]): Promise<{ proc: LineProcess; wsUrl: string; placed(): Promise<number> }> {
  const spec = { host, nodes: nodes.map((n) => ({ host, port: Number(new URL(n.httpUrl).port) })) };
  const proc = new LineProcess(`balancer@${ns.name}`, ns.spawn(process.execPath, [BALANCER, JSON.stringify(spec)]));
  const { port } = await within(proc.next<{ port: number }>('listening'), 10_000, () => `balancer did not listen: ${proc.stderr}`);
  return { proc, wsUrl: `ws://${host}:${port}/ws`, placed: async () => (await proc.next<{ node: number }>('placed')).node };
}

describeLab('NAT lab: peers on different cluster nodes, direct and on the WebSocket fallback', () => {
  let scene: TwoSites;
  let redisDir = '';
  let nodes: [Serve, Serve];
  let nodeArgs: (id: string) => string[];
  const session = new FallbackSession('cluster fallback', () => nodes.map((n, i) => ({ name: `n${i}`, stderr: n.proc.stderr })));

  beforeAll(async () => {
    scene = await twoSites(lab(), ['cone', 'cone']);
    const { net } = scene;
    const redis = await startRedisIn(net.pub);
    redisDir = redis.dir;
    nodeArgs = (id: string) => [...embeddedTurnArgs(net), '--redis', redis.url, '--node-id', id];
    nodes = [await startServe(net.pub, net.publicAddress, nodeArgs('n0')), await startServe(net.pub, net.publicAddress, nodeArgs('n1'))];
  }, 40_000);

  afterAll(() => {
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
  });

  afterEach(() => session.cleanup(), 30_000);

  /** A joins through n0, B through n1. */
  async function join(room: string): Promise<[FallbackPeer, FallbackPeer]> {
    const a = await session.join(scene.hostA.ns, { url: nodes[0].wsUrl, room, ...FAST_FALLBACK });
    const b = await session.join(scene.hostB.ns, { url: nodes[1].wsUrl, room, ...FAST_FALLBACK });
    return [a, b];
  }

  it('UDP blocked: the pair falls back to the WebSocket through both nodes and plays; UDP back: direct or relay, the reliable streams whole', async () => {
    await session.block(scene.siteA.router, scene.siteB.router);
    const before = await Promise.all(nodes.map((n) => relayedMessages(scene.net.pub, n.httpUrl)));
    const joined = Date.now();
    const [a, b] = await join('cluster-fb');
    // One signaling session on each node.
    expect((await Promise.all(nodes.map((n) => healthIn(scene.net.pub, n)))).map((h) => [h.status, h.connections])).toEqual([
      ['ok', 1],
      ['ok', 1],
    ]);

    await session.bothOn(a, b, (p) => p === 'websocket', joined, FALLBACK_MS, `no websocket path ${FALLBACK_MS} ms after joining`);
    await Promise.all([pump(a, b), pump(b, a)]);
    await session.expectFlowing(a, b, 'websocket', 'blocked');
    // Each node accepted its own peer's relay frames (and sent them across to the other).
    const during = await Promise.all(nodes.map((n) => relayedMessages(scene.net.pub, n.httpUrl)));
    for (const i of [0, 1]) {
      expect(during[i]!.reliable - before[i]!.reliable, `n${i} reliable relay frames`).toBeGreaterThanOrEqual(BURSTS.reliable);
      expect(during[i]!.unreliable - before[i]!.unreliable, `n${i} unreliable relay frames`).toBeGreaterThanOrEqual(BURSTS.game);
    }

    const unblocked = Date.now();
    await session.unblock();
    const [backA, backB] = await session.bothOn(a, b, (p) => p !== 'websocket', unblocked, RETURN_MS, `still on the WebSocket ${RETURN_MS} ms after UDP came back`);
    console.log(`[cluster fallback] unblocked: ${backA.path}/${backB.path} after ${backA.at - unblocked} / ${backB.at - unblocked} ms`);
    const back = (await peerView(a, b)).path as Path;
    expect(['direct', 'relay']).toContain(back);
    await session.expectFlowing(a, b, back, 'unblocked');

    const { ab, ba } = await session.expectComplete(a, b);
    for (const [to, from] of [
      [a, b],
      [b, a],
    ] as const) {
      const r = await received(to, from);
      expect(r.reliableByPath.websocket, to.proc.name).toBeGreaterThan(0);
      expect((r.reliableByPath.direct ?? 0) + (r.reliableByPath.relay ?? 0), to.proc.name).toBeGreaterThan(0);
      expect(r.errors, to.proc.name).toEqual([]);
    }
    console.log(`[cluster fallback] ${ab} + ${ba} reliable messages, complete`);
  }, 150_000);

  it("UDP blocked, SIGKILL of one peer's node: its session resumes on the survivor through the balancer, game state and both reliable streams go on whole", async () => {
    // A cluster of its own on the same Redis (another key prefix: the first test's nodes are
    // not part of it), behind a balancer: A lands on n2, B on n3; A's reconnect finds n2
    // dead and goes to n3.
    const ownArgs = (id: string) => [...nodeArgs(id), '--redis-prefix', 'rpkill'];
    const own = [await startServe(scene.net.pub, scene.net.publicAddress, ownArgs('n2')), await startServe(scene.net.pub, scene.net.publicAddress, ownArgs('n3'))] as const;
    const balancer = await startBalancerIn(scene.net.pub, scene.net.publicAddress, [...own]);
    await session.block(scene.siteA.router, scene.siteB.router);
    const reconnect = { baseMs: 100, capMs: 500 };
    const joined = Date.now();
    const a = await session.join(scene.hostA.ns, { url: balancer.wsUrl, room: 'cluster-kill', ...FAST_FALLBACK, reconnect });
    expect(await balancer.placed()).toBe(0);
    const b = await session.join(scene.hostB.ns, { url: balancer.wsUrl, room: 'cluster-kill', ...FAST_FALLBACK, reconnect });
    expect(await balancer.placed()).toBe(1);

    await session.bothOn(a, b, (p) => p === 'websocket', joined, FALLBACK_MS, `no websocket path ${FALLBACK_MS} ms after joining`);
    await Promise.all([pump(a, b), pump(b, a)]);
    await session.expectFlowing(a, b, 'websocket', 'before the kill');

    own[0].proc.child.kill('SIGKILL');
    await own[0].proc.closed;
    // A's client sees its socket close and reconnects: the balancer skips the dead node.
    expect(await within(balancer.placed(), 20_000, session.diagnosis('A did not reconnect'))).toBe(1);
    // Both directions keep flowing on the WebSocket, through the survivor alone now.
    await session.expectFlowing(a, b, 'websocket', 'after the kill');
    expect((await healthIn(scene.net.pub, own[1])).connections).toBe(2);
    // Past the survivor's adoption of the dead node (its heartbeat lapses after 3 s), which
    // must not end the resumed session.
    // n3 logs the adoption (to stderr, where `rallypoint serve` logs) once it counted it.
    await within(own[1].proc.stderrMatch(/node heartbeat lapsed/), 20_000, session.diagnosis('n3 did not adopt n2'));
    expect(await adoptedIn(scene.net.pub, own[1])).toBeGreaterThanOrEqual(1);
    await session.expectFlowing(a, b, 'websocket', 'after the adoption');
    // Resumed, not rejoined: the same id, and each still has the other, connected.
    const [healthA, healthB] = await Promise.all([
      a.proc.request<{ self: string; connected: boolean }>({ cmd: 'health', peer: b.id }, 'health'),
      b.proc.request<{ self: string; connected: boolean }>({ cmd: 'health', peer: a.id }, 'health'),
    ]);
    expect([healthA.self, healthA.connected, healthB.self, healthB.connected]).toEqual([a.id, true, b.id, true]);

    // The reliable streams are whole: every message once, in order, across the kill (frames
    // lost with the dead node's socket were sent again).
    const { ab, ba } = await session.expectComplete(a, b);
    for (const [to, from] of [
      [a, b],
      [b, a],
    ] as const)
      expect((await received(to, from)).errors, to.proc.name).toEqual([]);
    console.log(`[cluster fallback] across the kill: ${ab} + ${ba} reliable messages, complete`);
  }, 150_000);
});
