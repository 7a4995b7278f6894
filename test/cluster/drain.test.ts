/**
 * A node stopped with SIGTERM drains: it refuses new upgrades (503) and says `closing` on
 * /healthz, closes its clients with 1012, they resume on another node with their ids, the
 * room never hears them leave, and the node exits 0 as soon as its sessions moved. Then a
 * rolling restart: a fresh node joins, the other old node drains onto it.
 */
import { afterEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ExponentialBackoff } from '../../signaling/client/index.js';
import { CLOSE_CODES, SUBPROTOCOL } from '../../signaling/protocol/index.js';
import { killCliChildren } from '../helpers/cli.js';
import { health, type Node, startBalancer, startClusterNode, until } from '../helpers/cluster.js';
import { startGate } from '../helpers/gate.js';
import { httpGet } from '../helpers/http.js';
import { joinLogged, type PeerLog, range } from '../helpers/peer-log.js';
import { describeRedis, startRedis, stopAllRedis } from '../helpers/redis.js';
import { cleanup } from '../helpers/resources.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
  await stopAllRedis();
});

/** Long on purpose: a drained node must exit when its sessions moved, not when the grace ran out. */
const GRACE_MS = 20_000;

/** The HTTP status a WebSocket upgrade to `port` gets when refused (101 if accepted). */
function upgradeStatus(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, SUBPROTOCOL);
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.terminate();
    });
    ws.on('error', (err) => reject(err));
  });
}

/** Sends `{ n }` signals (n from `first` on) from `from` to each of `to`, paced under the rate limit, (skipping while `from` is away) until stopped; resolves with the next n. */
function stream(from: { client: { state: string; signal(to: string, data: unknown): void } }, to: string[], first = 0): { stop(): Promise<number> } {
  let on = true;
  let n = first;
  const done = (async () => {
    while (on) {
      if (from.client.state === 'open') {
        for (const id of to) from.client.signal(id, { n });
        n++;
      }
      await new Promise((r) => setTimeout(r, PACE_MS * to.length));
    }
  })();
  return {
    async stop() {
      on = false;
      await done;
      return n;
    },
  };
}

/** 40 signals/s: under the default 50 messages/s per connection (more would be refused, `rate-limited`). */
const PACE_MS = 25;

const patient = (): ExponentialBackoff => new ExponentialBackoff({ baseMs: 100, capMs: 300, maxAttempts: 1_000 });

/** Out-of-order arrivals (a later signal before an earlier one) in `seq`. */
const inversions = (seq: number[]): number => seq.filter((n, i) => i > 0 && n < seq[i - 1]!).length;

describeRedis('a node stopped with SIGTERM', () => {
  it('drains: refuses upgrades, its clients resume elsewhere with their ids and the signals sent meanwhile, no peer-left; exits 0 once they moved; then a rolling restart', async () => {
    const redis = await startRedis();
    const flags = ['--resume-grace-ms', String(GRACE_MS), '--slow-reader-close-ms', '1500'];
    const [n1, n2] = (await Promise.all(['n1', 'n2'].map((id) => startClusterNode(redis.url, id, flags)))) as [Node, Node];
    // The balancer reads this array at each connection: the rolling restart swaps a port.
    const ports = [n1.port, n2.port];
    const lb = await startBalancer(ports);
    const room = 'drain';

    lb.target = 0;
    const a = await joinLogged(lb.wsUrl, room);
    lb.target = 1;
    const gateB = await startGate(lb.port);
    const b = await joinLogged(gateB.wsUrl, room, { reconnect: patient() });
    const c = await joinLogged(lb.wsUrl, room, { reconnect: patient() });
    const everyone = [a, b, c];
    for (const p of everyone) await until(() => everyone.every((q) => q === p || p.log.peers.has(q.id)), `${p.id} to see the room`);

    // B is held back by its gate: n2 stays draining while the test looks at it.
    gateB.open = false;
    // B's side of the closing handshake is held back: n2 keeps B's connection CLOSING until
    // it terminates it (--slow-reader-close-ms). Signals for B that reach n2 meanwhile must
    // wait in B's session, not go to a socket that discards them.
    gateB.hold = true;
    lb.target = 0;
    const termAt = Date.now();
    n2.child.kill('SIGTERM');
    await n2.waitLog((l) => l.msg === 'draining: clients move to other nodes');
    for (const n of range(5)) a.client.signal(b.id, { n });
    await until(() => b.log.lost.length === 1 && c.log.lost.length === 1, 'n2 to close its clients');
    gateB.hold = false;
    expect(b.log.lost).toEqual([CLOSE_CODES.serviceRestart]);
    expect(c.log.lost).toEqual([CLOSE_CODES.serviceRestart]);
    // C was let through at once: it resumed on n1.
    await until(() => c.log.welcomes.length === 2, 'C to resume on n1');
    expect(c.log.welcomes[1]).toMatchObject({ id: c.id, resumed: true });

    // While draining: /healthz says closing (503), upgrades are refused with 503.
    const h = await health(n2);
    expect(h.status).toBe(503);
    expect(h.body.status).toBe('closing');
    expect(await upgradeStatus(n2.port)).toBe(503);
    expect(await upgradeStatus(n1.port)).toBe(101);

    // Signals to B while it is away (its session waits on n2), then while it moves. n2 is
    // frozen for the move, so its handover of s0..s9 comes late: s10..s14, sent to n1 after
    // the move, must still come after them.
    for (const n of range(5, 5)) a.client.signal(b.id, { n });
    n2.child.kill('SIGSTOP');
    gateB.open = true;
    await until(async () => (await redis.cli('HGET', `rp:{r.${room}}:m`, b.id)).startsWith('n1|'), 'B to be claimed by n1');
    for (const n of range(5, 10)) a.client.signal(b.id, { n });
    n2.child.kill('SIGCONT');
    const fromA = stream(a, [b.id], 15);
    await until(() => b.log.welcomes.length === 2, 'B to resume on n1');
    const resumedAt = b.log.welcomes[1]!.at;
    expect(b.log.welcomes[1]).toMatchObject({ id: b.id, resumed: true });
    expect(new Set(b.log.welcomes[1]!.peers.map((p) => p.id))).toEqual(new Set([a.id, c.id]));
    expect(lb.placed.slice(-1)).toEqual([0]);

    // n2 exits 0 as soon as its last session moved, long before its grace would end.
    const code = await n2.exited;
    const exitedAfterResumeMs = Date.now() - resumedAt;
    expect(code).toBe(0);
    expect(exitedAfterResumeMs).toBeLessThan(GRACE_MS / 2);

    await until(() => b.log.seqFrom(a.id).filter((n) => n >= 15).length >= 30, 'signals after the move', 20_000);
    const sent = await fromA.stop();
    await until(() => b.log.seqFrom(a.id).length === sent, `all ${sent} signals from A to reach B`).catch((err: unknown) => {
      const got = b.log.seqFrom(a.id);
      throw new Error(
        `${(err as Error).message}; missing ${JSON.stringify(range(sent).filter((n) => !got.includes(n)))}; B lost ${JSON.stringify(b.log.lost)}, welcomed at ${b.log.welcomes.map((w) => w.at - termAt).join(',')}; tail ${JSON.stringify(got.slice(-12))}`,
      );
    });
    const firstMove = b.log.seqFrom(a.id);
    // Every signal arrived, exactly once.
    expect([...firstMove].sort((x, y) => x - y)).toEqual(range(sent));
    const firstInversions = inversions(firstMove);
    expect(firstMove).toEqual(range(sent));

    // Rolling restart: a new node takes n2's place behind the balancer, then n1 drains onto it.
    const n2b = await startClusterNode(redis.url, 'n2b', flags);
    ports[1] = n2b.port;
    lb.target = 1;
    const d = await joinLogged(lb.wsUrl, room);
    for (const p of [a, b, c]) await until(() => p.log.peers.has(d.id), 'the room to see D');
    const toAll = stream(d, [a.id, b.id, c.id]);
    const before = [a, b, c].map((p) => p.log.welcomes.length);
    n1.child.kill('SIGTERM');
    await until(() => [a, b, c].every((p, i) => p.log.welcomes.length === before[i]! + 1), 'A, B and C to resume on n2b');
    for (const p of [a, b, c]) {
      expect(p.log.lost.at(-1)).toBe(CLOSE_CODES.serviceRestart);
      expect(p.log.welcomes.at(-1)).toMatchObject({ id: p.log.welcomes[0]!.id, resumed: true });
    }
    expect(await n1.exited).toBe(0);
    await until(() => [a, b, c].every((p) => p.log.seqFrom(d.id).length > 20), 'signals after the second move');
    const sentByD = await toAll.stop();
    await until(() => [a, b, c].every((p) => p.log.seqFrom(d.id).length === sentByD), 'every signal from D').catch(async (err: unknown) => {
      const report = [a, b, c].map((p) => {
        const got = p.log.seqFrom(d.id);
        return `${p.id}: missing ${JSON.stringify(range(sentByD).filter((n) => !got.includes(n)))}, ${inversions(got)} out of order, welcomes at ${p.log.welcomes.map((w) => w.at - termAt).join(',')}`;
      });
      const metrics = (await httpGet(`http://127.0.0.1:${n2b.port}/metrics`)).body
        .split('\n')
        .filter((x) => x.startsWith('rallypoint_cluster_') || x.startsWith('rallypoint_resume'))
        .join('\n');
      throw new Error(`${(err as Error).message}; sent ${sentByD}\n${report.join('\n')}\n${metrics}`);
    });
    for (const p of [a, b, c]) expect(p.log.seqFrom(d.id)).toEqual(range(sentByD));

    // Nobody ever left, nobody was taken for dead, and everyone is on n2b now.
    for (const p of [a, b, c, d] as { log: PeerLog }[]) expect(p.log.left).toEqual([]);
    // No signal was refused (peer-not-found, rate-limited, unavailable) along the way.
    for (const p of [a, b, c, d] as { log: PeerLog }[]) expect(p.log.errors).toEqual([]);
    expect(n2b.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('node heartbeat lapsed'))).toBe(false);
    expect((await health(n2b)).body).toMatchObject({ status: 'ok', peers: 4 });
    const after = await redis.cli('ZRANGE', 'rp:{c}:nodes', '0', '-1');
    expect(after.trim().split('\n')).toEqual(['n2b']);

    console.log(`SIGTERM figures: n2 exited ${exitedAfterResumeMs} ms after B resumed (${Date.now() - termAt} ms test span); out-of-order signals on the first move: ${firstInversions}`);
  }, 60_000);
});
