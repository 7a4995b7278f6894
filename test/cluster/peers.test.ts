/**
 * The peer library across cluster nodes: Node peers (werift) whose signaling sessions sit on
 * different `rallypoint serve --redis` processes, behind a TCP balancer the test steers
 * (test/helpers/cluster.ts). When a node dies (SIGKILL) or drains (SIGTERM, a rolling
 * deploy), what the peers already have must hold: a peer-to-peer data channel is not touched
 * at all, and peers on the WebSocket fallback get their reliable streams whole once the
 * signaling session resumed on the survivor.
 */
import { afterEach, expect, it } from 'vitest';
import { createNodeSignalingClient, ExponentialBackoff, type JoinRoomOptions, type RemotePeer, Room, type RtcRuntime, type Welcome, weriftRuntime } from '../../peer/node.js';
import type { PeerPath } from '../../peer/stats.js';
import { killCliChildren } from '../helpers/cli.js';
import { type Balancer, health, type Node, startBalancer, startClusterNode, until } from '../helpers/cluster.js';
import { startGate } from '../helpers/gate.js';
import { describeRedis, startRedis, stopAllRedis } from '../helpers/redis.js';
import { cleanup, defer } from '../helpers/resources.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
  await stopAllRedis();
});

/** A room and what its signaling client and peers reported, for assertions. */
interface Player {
  room: Room;
  /** Every `welcome` after the first (a reconnect), in order. */
  rewelcomes: Welcome[];
  /** `id path` of every path-change, and the ids of every peer-disconnected. */
  pathChanges: string[];
  disconnects: string[];
  left: string[];
  errors: string[];
}

/**
 * Joins `room` through the balancer onto node `node`. The room is built as `joinRoom` builds
 * it, but with the signaling client in hand, so the test sees every welcome (and whether the
 * session was resumed).
 */
async function joinOn(balancer: Balancer, node: number, room: string, extra: Partial<JoinRoomOptions> = {}): Promise<Player> {
  const options: JoinRoomOptions = {
    url: balancer.wsUrl,
    room,
    rtc: weriftRuntime(),
    // Fast, and patient enough to outlast a closed gate (test/helpers/gate.ts).
    reconnect: new ExponentialBackoff({ baseMs: 100, capMs: 500, maxAttempts: 1_000 }),
    ...extra,
  };
  balancer.target = node;
  const signaling = createNodeSignalingClient(options);
  const welcome = await signaling.connect();
  balancer.target = null;
  expect(balancer.placed.at(-1)).toBe(node);
  const player: Player = { room: new Room(signaling, welcome, options), rewelcomes: [], pathChanges: [], disconnects: [], left: [], errors: [] };
  signaling.on('open', (w) => player.rewelcomes.push(w));
  player.room.on('path-change', (p, path) => player.pathChanges.push(`${p.id} ${path}`));
  player.room.on('peer-disconnected', (p) => player.disconnects.push(p.id));
  player.room.on('peer-left', (p, reason) => player.left.push(`${p.id} ${reason}`));
  player.room.on('error', (err) => player.errors.push(`${err.code} ${err.message}`));
  player.room.connectExisting(welcome.peers);
  defer(() => player.room.leave());
  return player;
}

function peerOf(p: Player, other: Player): RemotePeer {
  const peer = p.room.peers.get(other.room.id);
  if (!peer) throw new Error(`${p.room.id} has no peer ${other.room.id}`);
  return peer;
}

/** What one side received from the other: reliable `r<n>` numbers in order, unreliable count. */
function inbox(p: Player): { reliable: number[]; unreliable: number } {
  const box = { reliable: [] as number[], unreliable: 0 };
  p.room.on('message', ({ channel, data }) => {
    if (channel === 'reliable' && typeof data === 'string' && data.startsWith('r')) box.reliable.push(Number(data.slice(1)));
    if (channel === 'unreliable') box.unreliable++;
  });
  return box;
}

/**
 * Sends `r<n>` on reliable (each send awaited, a short pause every few) and `u<n>` on
 * unreliable at 30 Hz from `from` to `to` until `stop()`, which resolves with the counts.
 */
function pump(from: Player, to: Player): { stop(): Promise<{ reliable: number; errors: string[] }> } {
  let running = true;
  const errors: string[] = [];
  let sent = 0;
  const timer = setInterval(() => {
    peerOf(from, to)
      .send('unreliable', 'u')
      .catch((err: Error) => errors.push(`unreliable: ${err.message}`));
  }, 1000 / 30);
  const reliable = (async () => {
    while (running) {
      try {
        await peerOf(from, to).send('reliable', `r${sent}`);
      } catch (err) {
        errors.push(`reliable: ${(err as Error).message}`);
        return;
      }
      sent++;
      if (sent % 4 === 0) await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      clearInterval(timer);
      await reliable;
      return { reliable: sent, errors };
    },
  };
}

function sequence(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Resolves when `p` has reached `want` for `other` (now or later). */
function pathReached(p: Player, other: Player, want: PeerPath): Promise<void> {
  return until(() => p.room.peers.get(other.room.id)?.path === want && p.room.peers.get(other.room.id)?.connected === true, `${p.room.id} on ${want} to ${other.room.id}`, 30_000);
}

/** The `rallypoint_cluster_adopted_nodes_total` of a node (its /metrics). */
async function adoptedNodes(node: Node): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.port}/metrics`);
  const m = /^rallypoint_cluster_adopted_nodes_total (\d+)$/m.exec(await res.text());
  return m ? Number(m[1]) : 0;
}

/**
 * How a's node goes and a's session comes back on the survivor. `prompt`: SIGKILL, and the
 * client reconnects at once, before the survivor noticed the death (the dead node's heartbeat
 * lapses after nodeTtlMs, 3 s). `late`: SIGKILL, and the client is kept away until the
 * survivor adopted the dead node's members (node '' and a grace deadline), then resumes from
 * there. `drain`: SIGTERM, a rolling deploy: the node closes its clients with 1012, they
 * resume on the survivor, and it exits once they have.
 */
const RESUMES = ['prompt', 'late', 'drain'] as const;
type Resume = (typeof RESUMES)[number];

/** Stops `a`'s node and brings `a`'s session back on the survivor as `when` says; returns once it resumed. */
async function stopAndResume(a: Player, gate: { open: boolean }, nodes: [Node, Node], when: Resume, others: Player[], meanwhile?: () => Promise<unknown>): Promise<void> {
  gate.open = when !== 'late';
  if (when === 'drain') nodes[0].child.kill('SIGTERM');
  else await kill(nodes[0]);
  if (when === 'late') {
    await meanwhile?.();
    await until(async () => (await adoptedNodes(nodes[1])) >= 1, 'n1 adopted n0', 20_000);
    // Nobody was told that a left: its peers wait for the resume.
    expect(a.rewelcomes).toEqual([]);
    for (const o of others) expect(o.left).toEqual([]);
    gate.open = true;
  }
  await until(() => a.rewelcomes.length > 0, 'a welcomed again', 20_000);
  expect(a.rewelcomes.map((w) => [w.resumed, w.id])).toEqual([[true, a.room.id]]);
  if (when === 'drain') {
    // Every session moved: the drained node exits cleanly, nobody adopts anything.
    expect(await nodes[0].exited).toBe(0);
    expect(await adoptedNodes(nodes[1])).toBe(0);
  } else {
    // Past the adoption (whichever came first), which must not end the resumed session.
    await until(async () => (await adoptedNodes(nodes[1])) >= 1, 'n1 adopted n0', 20_000);
  }
  expect((await health(nodes[1])).body.connections).toBe(1 + others.length);
}

/** Redis, two nodes and a balancer over them. */
async function cluster(): Promise<{ nodes: [Node, Node]; balancer: Balancer }> {
  const redis = await startRedis();
  const nodes = (await Promise.all([startClusterNode(redis.url, 'n0'), startClusterNode(redis.url, 'n1')])) as [Node, Node];
  return { nodes, balancer: await startBalancer(nodes.map((n) => n.port)) };
}

/** SIGKILLs `node` and waits for its exit. */
async function kill(node: Node): Promise<void> {
  node.child.kill('SIGKILL');
  expect(await node.exited).toBe('SIGKILL');
}

/** werift, except that while the gate is closed no remote candidate reaches ICE (test/peer/fallback.test.ts). */
function gatedRuntime(gate: { open: boolean }): RtcRuntime {
  const base = weriftRuntime();
  class Gated extends base.RTCPeerConnection {
    override async addIceCandidate(candidate?: RTCIceCandidateInit | null): Promise<void> {
      if (!gate.open) return;
      return super.addIceCandidate(candidate ?? undefined);
    }
    override async setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
      const sdp = !gate.open && description.sdp ? description.sdp.replace(/^a=candidate:.*\r\n/gm, '') : description.sdp;
      return super.setRemoteDescription(sdp === undefined ? description : { type: description.type, sdp });
    }
  }
  return { ...base, RTCPeerConnection: Gated as unknown as typeof RTCPeerConnection };
}

describeRedis('Node peers on different cluster nodes', () => {
  it.each(RESUMES)(
    "connect peer-to-peer; one peer's node dies or drains: their data channel is left alone while its signaling resumes on the survivor (%s)",
    async (when) => {
      const { nodes, balancer } = await cluster();
      const gate = await startGate(balancer.port);
      const a = await joinOn(balancer, 0, 'p2p', { url: gate.wsUrl });
      const b = await joinOn(balancer, 1, 'p2p');
      await Promise.all([pathReached(a, b, 'direct'), pathReached(b, a, 'direct')]);
      // One session on each node, in one room (membership through Redis).
      expect([(await health(nodes[0])).body.connections, (await health(nodes[1])).body.connections]).toEqual([1, 1]);

      const atA = inbox(a);
      const atB = inbox(b);
      const ab = pump(a, b);
      const ba = pump(b, a);
      await until(() => atA.reliable.length > 50 && atB.reliable.length > 50 && atA.unreliable > 5 && atB.unreliable > 5, 'traffic both ways');
      const connA = peerOf(a, b).connection;
      const connB = peerOf(b, a).connection;
      const gens = [peerOf(a, b).generation, peerOf(b, a).generation];
      // What each said about the other.
      const events = (p: Player, other: Player) => ({
        pathChanges: p.pathChanges.filter((e) => e.startsWith(`${other.room.id} `)),
        disconnects: p.disconnects.filter((id) => id === other.room.id),
        left: p.left,
        rewelcomes: p.rewelcomes.length,
      });
      const before = [events(a, b), events(b, a)];

      // a's client notices the closed socket, reconnects through the balancer (only n1 is
      // left) and resumes: same id, nobody told that it left. Kept away (late), it finds a
      // newcomer on the survivor whose offer waited for it.
      const killedAt = { a: atA.reliable.length, b: atB.reliable.length };
      const others = [b];
      await stopAndResume(a, gate, nodes, when, others, async () => others.push(await joinOn(balancer, 1, 'p2p')));
      await until(() => atA.reliable.length > killedAt.a + 200 && atB.reliable.length > killedAt.b + 200, 'traffic after the kill');

      const [sentAB, sentBA] = await Promise.all([ab.stop(), ba.stop()]);
      await until(() => atB.reliable.length >= sentAB.reliable && atA.reliable.length >= sentBA.reliable, 'the last reliable messages');
      expect(sentAB.errors).toEqual([]);
      expect(sentBA.errors).toEqual([]);
      expect(atB.reliable).toEqual(sequence(sentAB.reliable));
      expect(atA.reliable).toEqual(sequence(sentBA.reliable));
      // Undisturbed: the same RTCPeerConnection, no rebuild, no path change, no disconnect.
      expect(peerOf(a, b).connection).toBe(connA);
      expect(peerOf(b, a).connection).toBe(connB);
      expect([peerOf(a, b).generation, peerOf(b, a).generation]).toEqual(gens);
      expect([peerOf(a, b).path, peerOf(b, a).path]).toEqual(['direct', 'direct']);
      expect(events(b, a)).toEqual(before[1]);
      expect(events(a, b)).toEqual({ ...before[0]!, rewelcomes: 1 });
      expect([a.errors, b.errors]).toEqual([[], []]);

      // The resumed session signals: a newcomer on the survivor (joined while a was away, or
      // now) connects to both.
      const c = others[1] ?? (await joinOn(balancer, 1, 'p2p'));
      await Promise.all([pathReached(c, a, 'direct'), pathReached(c, b, 'direct'), pathReached(a, c, 'direct')]);
      expect(c.left).toEqual([]);
    },
    90_000,
  );

  it.each(RESUMES)(
    "on the WebSocket fallback, one peer's node dies or drains: after the resume the reliable stream goes on whole and unreliable state resumes (%s)",
    async (when) => {
      const { nodes, balancer } = await cluster();
      const gate = await startGate(balancer.port);
      const rtc = gatedRuntime({ open: false });
      const fast = { fallback: { afterMs: 400 }, restart: { disconnectedGraceMs: 200, baseDelayMs: 100, maxDelayMs: 400, attemptTimeoutMs: 1_500 } };
      const a = await joinOn(balancer, 0, 'fallback', { rtc, ...fast, url: gate.wsUrl });
      const b = await joinOn(balancer, 1, 'fallback', { rtc, ...fast });
      await Promise.all([pathReached(a, b, 'websocket'), pathReached(b, a, 'websocket')]);

      const atA = inbox(a);
      const atB = inbox(b);
      const ab = pump(a, b);
      const ba = pump(b, a);
      // Relayed both ways across the nodes (through Redis).
      await until(() => atA.reliable.length > 50 && atB.reliable.length > 50 && atA.unreliable > 5 && atB.unreliable > 5, 'relayed traffic both ways');

      await stopAndResume(a, gate, nodes, when, [b]);
      const resumed = { a: { ...atA, reliable: atA.reliable.length }, b: { ...atB, reliable: atB.reliable.length } };
      // Both directions go on, reliable and unreliable.
      await until(
        () =>
          atA.reliable.length > resumed.a.reliable + 100 && atB.reliable.length > resumed.b.reliable + 100 && atA.unreliable > resumed.a.unreliable + 10 && atB.unreliable > resumed.b.unreliable + 10,
        'reliable and unreliable traffic after the resume',
        30_000,
      );

      const [sentAB, sentBA] = await Promise.all([ab.stop(), ba.stop()]);
      await until(() => atB.reliable.length >= sentAB.reliable && atA.reliable.length >= sentBA.reliable, 'the last reliable messages', 20_000);
      expect(sentAB.errors).toEqual([]);
      expect(sentBA.errors).toEqual([]);
      // Whole: every message once, in order (what was lost with the dead node's socket was sent again).
      expect(atB.reliable).toEqual(sequence(sentAB.reliable));
      expect(atA.reliable).toEqual(sequence(sentBA.reliable));
      expect([a.left, b.left]).toEqual([[], []]);
      expect([peerOf(a, b).path, peerOf(b, a).path]).toEqual(['websocket', 'websocket']);
      // While a is away for seconds its background ICE attempts (on the fallback, ICE is
      // retried all along) cannot send their offers: the room reports each as an error and the
      // next attempt, after the resume, signals again. Nothing else may go wrong.
      expect(a.errors.filter((e) => !/^signaling cannot signal \S+: cannot send signal: not joined$/.test(e))).toEqual([]);
      if (when === 'prompt') expect(a.errors).toEqual([]);
      expect(b.errors).toEqual([]);
    },
    90_000,
  );
});
