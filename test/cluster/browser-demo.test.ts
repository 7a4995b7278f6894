/**
 * The demo game across cluster nodes, as a user deploys it: Redis, two `rallypoint serve
 * --redis` nodes (each serving the demo and the bundle from dist/web), the documented nginx
 * config in front with TLS, and two Chromium players loading the demo over https:// whose
 * signaling sessions land on different nodes. They must see each other and play over a
 * direct data channel, exactly as on one node (test/browser/demo.test.ts).
 */
import { existsSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterEach, expect, it } from 'vitest';
import type { Position } from '../../web/demo/demo.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH, chromiumMissing, NO_MDNS_ARG, type PageLog, watchPage } from '../helpers/browser.js';
import { describeNeeding } from '../helpers/child.js';
import { killCliChildren } from '../helpers/cli.js';
import { health, type Node, startClusterNode, until } from '../helpers/cluster.js';
import { type NginxServer, nginxMissing, startNginx, stopAllNginx } from '../helpers/nginx.js';
import { redisMissing, startRedis, stopAllRedis } from '../helpers/redis.js';
import { cleanup, defer } from '../helpers/resources.js';

/** Movement a test holds a key for; the avatar moves 220 px/s at 30 Hz. */
const MOVE_PX = 60;

afterEach(async () => {
  await cleanup();
  await stopAllNginx();
  killCliChildren();
  await stopAllRedis();
});

interface Player {
  page: Page;
  log: PageLog;
  id: string;
}

async function connectionsOf(nodes: Node[]): Promise<number[]> {
  return Promise.all(nodes.map(async (n) => (await health(n)).body.connections as number));
}

/** One plain request through nginx (moves its round-robin on by one). */
function probe(nginx: NginxServer): Promise<number> {
  return new Promise((resolve, reject) => {
    httpsGet(`${nginx.httpsUrl}/healthz`, { ca: nginx.caPem, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
}

/** Every `rallypoint_relay_messages_total` of a node (its /metrics), summed. */
async function relayed(node: Node): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  const counts = [...text.matchAll(/^rallypoint_relay_messages_total\{[^}]*\} (\d+)$/gm)].map((m) => Number(m[1]));
  if (counts.length === 0) throw new Error('no rallypoint_relay_messages_total in /metrics');
  return counts.reduce((s, c) => s + c, 0);
}

const positionOf = (p: Player): Promise<Position> => p.page.evaluate(() => window.rallypointDemo.position);

/** Resolves once `viewer` shows `mover`'s avatar at `pos` (state and DOM). */
const seesAt = (viewer: Player, mover: Player, pos: Position) =>
  viewer.page.waitForFunction(
    ({ id, x, y }) => {
      const peer = window.rallypointDemo.peers.find((p) => p.id === id);
      const avatar = document.querySelector<HTMLElement>(`#arena [data-peer="${id}"]`);
      return peer?.lastPosition?.x === x && peer.lastPosition.y === y && avatar?.style.transform === `translate(${x}px, ${y}px)` && !avatar.hidden;
    },
    { id: mover.id, ...pos },
  );

/** Holds the arrow key away from the nearer wall until the avatar moved MOVE_PX on x; returns the new position. */
async function moveX(p: Player): Promise<Position> {
  const start = await positionOf(p);
  const forward = start.x < 320;
  const key = forward ? 'ArrowRight' : 'ArrowLeft';
  await p.page.keyboard.down(key);
  await p.page.waitForFunction(
    ({ from, forward, d }) => {
      const v = window.rallypointDemo.position.x;
      return forward ? v >= from + d : v <= from - d;
    },
    { from: start.x, forward, d: MOVE_PX },
  );
  await p.page.keyboard.up(key);
  return positionOf(p);
}

async function chat(from: Player, to: Player, text: string): Promise<void> {
  await from.page.fill('#chat-input', text);
  await from.page.press('#chat-input', 'Enter');
  await to.page.waitForFunction(({ id, text }) => window.rallypointDemo.chat.some((l) => l.from === id && l.text === text && !l.self), { id: from.id, text });
}

/** A node's `rallypoint_cluster_adopted_nodes_total`: dead nodes whose members it took over. */
async function adopted(node: Node): Promise<number> {
  const m = /^rallypoint_cluster_adopted_nodes_total (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text());
  return m ? Number(m[1]) : 0;
}

const connectedPeers = (p: Player, n: number) => p.page.waitForFunction((want) => document.body.dataset.connectedPeers === String(want), n);

/**
 * No page error and no error in the demo, but for `peer-not-found` about `gone` ids: a peer
 * that reloads (leaves) while the other side is still connecting to it makes that side's
 * signals in flight find nobody, on one node as on several.
 */
async function expectClean(players: Player[], gone: string[] = []): Promise<void> {
  for (const p of players) {
    expect(p.log.errors).toEqual([]);
    const errors = await p.page.evaluate(() => window.rallypointDemo.errors);
    expect(errors.filter((e) => !gone.some((id) => e === `peer-not-found: no peer ${id} in room cluster-demo`))).toEqual([]);
  }
}

describeNeeding(redisMissing() ?? nginxMissing() ?? chromiumMissing(), 'the demo in Chromium, two players on different cluster nodes behind nginx', () => {
  /**
   * Redis, nodes n0 and n1 behind the documented nginx config, Chromium trusting its
   * certificate, and two players (a browser context each, as on two machines) in one room
   * whose signaling sessions are on different nodes: `alice` on `nodes[home]`.
   */
  async function playersApart(): Promise<{ nodes: Node[]; nginx: NginxServer; alice: Player; bob: Player; home: number; gone: string[]; open(): Promise<Player> }> {
    if (!existsSync(fileURLToPath(new URL('../../dist/web/demo.js', import.meta.url)))) throw new Error('no dist/web/demo.js: run `npm run build`');
    const redis = await startRedis();
    const nodes = await Promise.all([startClusterNode(redis.url, 'n0'), startClusterNode(redis.url, 'n1')]);
    const nginx = await startNginx({ upstreams: nodes.map((n) => n.port) });
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS, NO_MDNS_ARG, `--ignore-certificate-errors-spki-list=${nginx.spki}`],
      timeout: 15_000,
    });
    defer(() => browser.close());
    const url = `${nginx.httpsUrl}/?room=cluster-demo`;
    const total = async (): Promise<number> => (await connectionsOf(nodes)).reduce((s, c) => s + c, 0);

    async function open(): Promise<Player> {
      const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
      context.setDefaultTimeout(15_000);
      defer(() => context.close());
      const page = await context.newPage();
      const log = watchPage(page);
      const res = await page.goto(url);
      expect(res?.status()).toBe(200);
      await page.waitForFunction(() => window.rallypointDemo?.status === 'joined');
      return { page, log, id: await page.evaluate(() => window.rallypointDemo.id as string) };
    }

    const alice = await open();
    await until(async () => (await total()) === 1, "alice's signaling connection");
    const home = (await connectionsOf(nodes)).indexOf(1);
    const bob = await open();
    /** bob's ids of the sessions he left by reloading. */
    const gone: string[] = [];
    // nginx's round-robin counts every request (the page, its scripts, the upgrade), so bob's
    // upgrade lands on either node: reload (the demo leaves on pagehide) until it is on the
    // other one, moving the rotation on by one request each time.
    for (let attempt = 0; ; attempt++) {
      await until(async () => (await total()) === 2, "bob's signaling connection");
      if ((await connectionsOf(nodes)).join() === '1,1') {
        console.log(`[cluster demo] bob on the other node after ${attempt} reload(s)`);
        break;
      }
      if (attempt >= 5) throw new Error(`bob's signaling stayed on alice's node: ${(await connectionsOf(nodes)).join()}`);
      expect(await probe(nginx)).toBe(200);
      gone.push(bob.id);
      await bob.page.reload();
      await bob.page.waitForFunction(() => window.rallypointDemo?.status === 'joined');
      bob.id = await bob.page.evaluate(() => window.rallypointDemo.id as string);
    }
    // One session on each node, in the same room.
    expect(await connectionsOf(nodes)).toEqual([1, 1]);
    expect(await Promise.all(nodes.map(async (n) => (await health(n)).body.peers))).toEqual([1, 1]);
    await Promise.all([connectedPeers(alice, 1), connectedPeers(bob, 1)]);
    expect(await alice.page.evaluate(() => window.rallypointDemo.peers.map((p) => p.id))).toEqual([bob.id]);
    expect(await bob.page.evaluate(() => window.rallypointDemo.peers.map((p) => p.id))).toEqual([alice.id]);
    // Peer to peer: the HUD's path (from peer.stats()) is direct on both sides.
    await Promise.all(
      [alice, bob].map((p) =>
        p.page.waitForFunction(() => {
          const [peer] = window.rallypointDemo.peers;
          return peer?.path === 'direct' && typeof peer.rttMs === 'number';
        }),
      ),
    );
    return { nodes, nginx, alice, bob, home, gone, open };
  }

  it('both load it over https://, see each other and play (movement, chat) over a direct data channel', async () => {
    const { nodes, alice, bob, gone } = await playersApart();
    // Positions stream at 30 Hz: each sees the other where it stands, and follows its keys.
    await seesAt(bob, alice, await positionOf(alice));
    await seesAt(alice, bob, await positionOf(bob));
    await seesAt(bob, alice, await moveX(alice));
    await seesAt(alice, bob, await moveX(bob));
    await chat(alice, bob, 'hello from node one');
    await chat(bob, alice, 'and from node two');

    // Still direct, and nothing of this went over the WebSocket relay of either node.
    for (const p of [alice, bob]) expect(await p.page.evaluate(() => window.rallypointDemo.peers.map((x) => x.path))).toEqual(['direct']);
    expect(await Promise.all(nodes.map(relayed))).toEqual([0, 0]);
    await expectClean([alice, bob], gone);
  }, 90_000);

  it("SIGKILL of alice's node: the game goes on, her page resumes through nginx on the survivor, and a third player joins both", async () => {
    const { nodes, alice, bob, home, gone, open } = await playersApart();
    const dead = nodes[home]!;
    const survivor = nodes[1 - home]!;
    dead.child.kill('SIGKILL');
    expect(await dead.exited).toBe('SIGKILL');
    // Her client reconnects through nginx, which skips the dead node, and resumes there.
    await until(async () => (await health(survivor)).body.connections === 2, "alice's page on the survivor", 20_000);
    await until(async () => (await adopted(survivor)) >= 1, 'the survivor to adopt the dead node', 20_000);
    // Same ids, nobody left, the data channel as it was: they keep playing.
    expect(await alice.page.evaluate(() => window.rallypointDemo.id)).toBe(alice.id);
    expect(await bob.page.evaluate(() => window.rallypointDemo.peers.map((p) => [p.id, p.connected, p.path]))).toEqual([[alice.id, true, 'direct']]);
    await seesAt(bob, alice, await moveX(alice));
    await chat(bob, alice, 'still here');
    // The resumed session signals: carol (on the survivor, the only node left) meets both.
    const carol = await open();
    await Promise.all([connectedPeers(alice, 2), connectedPeers(bob, 2), connectedPeers(carol, 2)]);
    await chat(carol, alice, 'hi alice');
    expect(await relayed(survivor)).toBe(0);
    await expectClean([alice, bob, carol], gone);
  }, 90_000);
});
