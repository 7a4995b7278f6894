/**
 * Redis trouble under a running cluster (real redis-server, real `rallypoint serve --redis`
 * processes): Redis killed and restarted empty during cross-node traffic, and a
 * subscription that silently stops delivering.
 */
import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket, connect as tcpConnect } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import type { ServerMessage } from '../../signaling/protocol/index.js';
import { killCliChildren } from '../helpers/cli.js';
import { health, joinAt, type Node, startClusterNode, until } from '../helpers/cluster.js';
import { httpGet } from '../helpers/http.js';
import { describeRedis, startRedis, stopAllRedis } from '../helpers/redis.js';
import { cleanup, defer } from '../helpers/resources.js';
import { TestClient } from '../helpers/ws-client.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
  await stopAllRedis();
});

async function metric(node: Node, name: string): Promise<number> {
  const text = (await httpGet(`http://127.0.0.1:${node.port}/metrics`)).body;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

/** Signals from `from` to `to` every `everyMs`, numbered; stop() says how many were sent. */
function stream(from: TestClient, to: string, everyMs: number): { stop(): number; sent(): number } {
  let i = 0;
  const t = setInterval(() => from.send({ type: 'signal', to, data: { i: i++ } }), everyMs);
  defer(() => clearInterval(t));
  return {
    sent: () => i,
    stop: () => {
      clearInterval(t);
      return i;
    },
  };
}

/** Collects the numbers of the signals `c` gets, and any error frame. */
function collect(c: TestClient): { got: number[]; errors: string[] } {
  const out = { got: [] as number[], errors: [] as string[] };
  const loop = async (): Promise<void> => {
    for (;;) {
      const m: ServerMessage = await c.next();
      if (m.type === 'signal') out.got.push((m.data as { i: number }).i);
      if (m.type === 'error') out.errors.push(m.code);
    }
  };
  void loop().catch(() => undefined);
  return out;
}

/**
 * A TCP proxy to Redis that can silence the subscriber connections going through it: their
 * replies and messages stop reaching the node while the TCP connection stays up (a flow a
 * middlebox lost, a failover that kept the socket). Other flows, and new ones, pass.
 */
async function startSilencer(redisPort: number): Promise<{ port: number; silence(): void; silenced: number }> {
  const flows: { subscriber: boolean; silent: boolean }[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((down) => {
    const up = tcpConnect(redisPort, '127.0.0.1');
    const flow = { subscriber: false, silent: false };
    flows.push(flow);
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    down.on('data', (b: Buffer) => {
      if (/ssubscribe/i.test(b.toString('latin1'))) flow.subscriber = true;
      up.write(b);
    });
    up.on('data', (b: Buffer) => void (flow.silent || down.write(b)));
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  defer(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  const proxy = {
    port: (server.address() as AddressInfo).port,
    silenced: 0,
    silence() {
      for (const f of flows) {
        if (f.subscriber && !f.silent) {
          f.silent = true;
          proxy.silenced++;
        }
      }
    },
  };
  return proxy;
}

describeRedis('Redis trouble under a running cluster', () => {
  it('Redis killed and restarted empty during cross-node traffic: no crash, degraded meanwhile, joins retried, no signal lost, state rebuilt', async () => {
    const redis = await startRedis();
    const [n1, n2] = await Promise.all([startClusterNode(redis.url, 'n1'), startClusterNode(redis.url, 'n2')]);
    const a = await TestClient.connect(n1.wsUrl);
    const aWelcome = await a.join('game');
    const b = await TestClient.connect(n2.wsUrl);
    const bWelcome = await b.join('game');
    await a.next('peer-joined');
    const seen = collect(b);
    const told = collect(a);
    const flow = stream(a, bWelcome.id, 40);
    await until(() => seen.got.length >= 10, 'signals before the outage');

    const atKill = seen.got.length;
    await redis.kill('SIGKILL');
    const afterKill = seen.got.length;
    await until(async () => (await health(n1)).status === 503 && (await health(n2)).status === 503, 'both nodes degraded');
    const sentWhenDegraded = flow.sent();
    expect((await health(n1)).body.status).toBe('degraded');
    expect(await metric(n2, 'rallypoint_cluster_degraded')).toBe(1);

    // A join during the outage is refused with `unavailable` and 1013 ("try again later")...
    const probe = await TestClient.connect(n2.wsUrl);
    expect(await probe.expectError({ type: 'join', room: 'game', ref: 'during' })).toMatchObject({ code: 'unavailable', ref: 'during' });
    expect((await probe.closed).code).toBe(1013);
    // ...and the SignalingClient retries with backoff: its join completes once Redis is back.
    const late = joinAt(n1.wsUrl, 'game');

    await redis.restart();
    await until(async () => (await health(n1)).status === 200 && (await health(n2)).status === 200, 'both nodes healthy again', 10_000);
    const c = await late;
    const healthyAt = flow.sent();
    // Its welcome names B, although B's node may not have put B back into Redis yet.
    expect(new Set(c.peers)).toEqual(new Set([aWelcome.id, bWelcome.id]));

    // The signals sent before, during and after the outage: every one delivered, once, in order.
    await until(() => seen.got.some((i) => i >= healthyAt + 10), 'signals after the outage', 10_000);
    const sent = flow.stop();
    await until(() => seen.got.length >= sent, `all ${sent} signals (${atKill} delivered at the kill, ${afterKill} after, ${sentWhenDegraded} sent when degraded)`, 10_000).catch((err: Error) => {
      const lost = [...Array(sent).keys()].filter((i) => !seen.got.includes(i));
      for (const [name, n] of [
        ['n1', n1],
        ['n2', n2],
      ] as const)
        for (const l of n.logs) if ((l.level as number) >= 40) console.log(name, JSON.stringify(l));
      throw new Error(`${err.message}; lost: ${lost.join(',')}; errors at the sender: ${told.errors.join(',')}`);
    });
    expect(seen.got).toEqual([...Array(sent).keys()]);
    expect(seen.errors).toEqual([]);
    expect(told.errors).toEqual([]);

    // State rebuilt from the nodes: a newcomer sees everyone, and leaving works across nodes.
    const d = await TestClient.connect(n2.wsUrl);
    const dWelcome = await d.join('game');
    expect(new Set(dWelcome.peers.map((p) => p.id))).toEqual(new Set([aWelcome.id, bWelcome.id, c.id]));
    b.send({ type: 'leave' });
    for (;;) {
      const m = await d.next('peer-left');
      if (m.id === bWelcome.id) break;
    }
    expect(n1.child.exitCode).toBeNull();
    expect(n2.child.exitCode).toBeNull();
  });

  it('a node killed while Redis is down: once Redis is back, its peers are gone for everyone, and the others still talk', async () => {
    const redis = await startRedis();
    const [n1, n2, n3] = await Promise.all([startClusterNode(redis.url, 'n1'), startClusterNode(redis.url, 'n2'), startClusterNode(redis.url, 'n3')]);
    const a = await TestClient.connect(n1.wsUrl);
    const aWelcome = await a.join('lost');
    const b = await TestClient.connect(n2.wsUrl);
    const bWelcome = await b.join('lost');
    const e = await TestClient.connect(n3.wsUrl);
    const eWelcome = await e.join('lost');
    for (const c of [a, b]) await c.next('peer-joined');
    await a.next('peer-joined');

    await redis.kill('SIGKILL');
    await until(async () => (await health(n1)).status === 503, 'n1 degraded');
    n3.child.kill('SIGKILL');
    await n3.exited;
    await redis.restart();
    // Nobody puts E back (its node is dead and Redis forgot it): after the recovery window,
    // each node tells its own members that E left.
    for (const c of [a, b]) expect((await c.next('peer-left')).id).toBe(eWelcome.id);
    const d = await TestClient.connect(n2.wsUrl);
    const dWelcome = await d.join('lost');
    expect(new Set(dWelcome.peers.map((p) => p.id))).toEqual(new Set([aWelcome.id, bWelcome.id]));
    const seen = collect(b);
    a.send({ type: 'signal', to: bWelcome.id, data: { i: 0 } });
    await until(() => seen.got.length === 1, 'a signal across nodes after the recovery');
  });

  it('a subscription that silently stops delivering is noticed and renewed', async () => {
    const redis = await startRedis();
    const silencer = await startSilencer(redis.port);
    const [n1, n2] = await Promise.all([startClusterNode(redis.url, 'n1'), startClusterNode(`redis://127.0.0.1:${silencer.port}`, 'n2')]);
    const a = await TestClient.connect(n1.wsUrl);
    await a.join('quiet');
    const b = await TestClient.connect(n2.wsUrl);
    const bWelcome = await b.join('quiet');
    const seen = collect(b);
    a.send({ type: 'signal', to: bWelcome.id, data: { i: 0 } });
    await until(() => seen.got.length === 1, 'a signal before');
    const renewals = await metric(n2, 'rallypoint_cluster_subscription_renewals_total');

    silencer.silence();
    expect(silencer.silenced).toBe(1);
    // Within a few heartbeats n2 misses its own keepalive and subscribes again on a new connection.
    await until(async () => (await metric(n2, 'rallypoint_cluster_subscription_renewals_total')) > renewals, 'the subscription renewed', 10_000);
    // Delivery to n2 works again (frames published into the silent flow meanwhile are lost:
    // Redis counted the old subscription as a receiver).
    let k = 1;
    await until(
      () => {
        a.send({ type: 'signal', to: bWelcome.id, data: { i: k++ } });
        return seen.got.length >= 2;
      },
      'delivery after the renewal',
      10_000,
    );
    expect((await health(n2)).status).toBe(200);
  });
});
