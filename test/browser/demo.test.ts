import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeBrowser, launchChromium } from '../helpers/browser.js';
import { connectedPeers, expectClean, move, type Player, play as playIn, positionOf, seesAt } from '../helpers/demo-players.js';
import { type NpmServer, startNpmServer } from '../helpers/npm-start.js';
import { cleanup, defer } from '../helpers/resources.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const ARTIFACTS = `${root}test-artifacts`;
describeBrowser('demo game in Chromium, served by the real `npm start`', () => {
  let server: NpmServer;
  let browser: Browser;
  let starting: [Promise<NpmServer>, Promise<Browser>] | null = null;

  beforeAll(async () => {
    if (!existsSync(`${root}dist/web/index.html`) || !existsSync(`${root}dist/web/demo.js`)) {
      throw new Error('dist/web has no demo: `npm run build` must run `node web/build.mjs`');
    }
    starting = [startNpmServer(), launchChromium()];
    [server, browser] = await Promise.all(starting);
  }, 30_000);

  // Closes what started even when beforeAll failed or timed out half-way.
  afterAll(async () => {
    if (!starting) return;
    const [s, b] = await Promise.allSettled(starting);
    if (b.status === 'fulfilled') await b.value.close();
    if (s.status === 'fulfilled') await s.value.close();
  }, 30_000);

  afterEach(cleanup);

  async function newContext(): Promise<BrowserContext> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    context.setDefaultTimeout(12_000);
    defer(() => context.close());
    return context;
  }

  /** Opens the demo in a new tab and waits until it joined its room. */
  const play = (context: BrowserContext, room: string): Promise<Player> => playIn(context, server.url, room);

  it('serves the demo page, its module and the bundle from dist/web, nothing outside it', async () => {
    const home = await fetch(`${server.url}/`);
    expect(home.status).toBe(200);
    expect(home.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await home.text()).toContain('<script type="module" src="./demo.js"></script>');
    for (const path of ['/demo.js', '/rallypoint.min.js']) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toBe('text/javascript; charset=utf-8');
    }
    // fetch() would normalize `..` away: send the path as is.
    const { hostname, port } = new URL(server.url);
    const status = await new Promise<number>((resolve, reject) => {
      request({ host: hostname, port, path: '/../package.json', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    expect(status).toBe(404);
    expect((await fetch(`${server.url}/nope.js`)).status).toBe(404);
  });

  it('two tabs: arrow keys move the avatar on the other tab, chat arrives both ways, the HUD shows path, RTT and the signaling transport', async () => {
    const context = await newContext();
    const room = `demo-${randomUUID().slice(0, 8)}`;
    const alice = await play(context, room);
    const bob = await play(context, room);
    await Promise.all([connectedPeers(alice, 1), connectedPeers(bob, 1)]);
    expect(await alice.page.evaluate(() => window.rallypointDemo.peers.map((p) => p.id))).toEqual([bob.id]);

    // Positions stream at 30 Hz, so Bob sees Alice where she stands before she moves...
    await seesAt(bob, alice, await positionOf(alice));
    // ...and follows her keys, on both axes.
    const afterX = await move(alice, 'x');
    await seesAt(bob, alice, afterX);
    const afterY = await move(alice, 'y');
    await seesAt(bob, alice, afterY);
    // Bob moves too; Alice sees it.
    await seesAt(alice, bob, await move(bob, 'x'));

    // Chat on `reliable`: typed into the form, shown on the other tab as text, never as HTML.
    const text = 'gg <img src=x onerror="window.pwned=1"> & well played';
    await alice.page.fill('#chat-input', text);
    // Arrow keys in the chat box edit the text, they do not move the avatar.
    const before = await positionOf(alice);
    await alice.page.press('#chat-input', 'ArrowLeft');
    await alice.page.press('#chat-input', 'Enter');
    expect(await alice.page.inputValue('#chat-input')).toBe('');
    await bob.page.waitForFunction(({ from, text }) => window.rallypointDemo.chat.some((l) => l.from === from && l.text === text && !l.self), { from: alice.id, text });
    const lastLine = bob.page.locator('#chat-log li').last();
    expect(await lastLine.textContent()).toContain(text);
    expect(await bob.page.locator('#chat-log img').count()).toBe(0);
    expect(await bob.page.evaluate(() => (window as { pwned?: number }).pwned)).toBeUndefined();
    expect(await alice.page.evaluate(() => window.rallypointDemo.chat.map((l) => [l.self, l.text]))).toEqual([[true, text]]);
    expect(await positionOf(alice)).toEqual(before);

    await bob.page.fill('#chat-input', 'thanks!');
    await bob.page.click('#chat-form button');
    await alice.page.waitForFunction((from) => window.rallypointDemo.chat.some((l) => l.from === from && l.text === 'thanks!'), bob.id);

    // HUD: path, RTT and loss from peer.stats(), refreshed every second.
    await bob.page.waitForFunction(() => {
      const [p] = window.rallypointDemo.peers;
      return p?.path === 'direct' && typeof p.rttMs === 'number' && p.packetsLost >= 0;
    });
    const row = bob.page.locator(`#peers tr[data-peer="${alice.id}"]`);
    await expect.poll(() => row.locator('td').allTextContents()).toEqual([alice.id.slice(0, 6), 'direct', expect.stringMatching(/^\d+\.\d ms$/), expect.stringMatching(/^\d+$/)]);
    // The header: how signaling reaches the server (nothing in the way here: a WebSocket).
    for (const p of [alice, bob]) {
      expect(await p.page.textContent('#transport')).toBe('websocket');
      expect(await p.page.evaluate(() => window.rallypointDemo.transport)).toBe('websocket');
    }
    await expectClean(alice, bob);
  });

  it('three tabs form a mesh; a closed tab and a tab that leaves disappear from the others', async () => {
    const context = await newContext();
    const room = `mesh-${randomUUID().slice(0, 8)}`;
    const players = [await play(context, room), await play(context, room), await play(context, room)];
    await Promise.all(players.map((p) => connectedPeers(p, 2)));
    for (const p of players) {
      const seen = await p.page.evaluate(() =>
        window.rallypointDemo.peers
          .filter((x) => x.connected)
          .map((x) => x.id)
          .sort(),
      );
      expect(seen).toEqual(
        players
          .filter((o) => o !== p)
          .map((o) => o.id)
          .sort(),
      );
    }
    // Everyone sees everyone else's avatar.
    for (const viewer of players) for (const mover of players) if (viewer !== mover) await seesAt(viewer, mover, await positionOf(mover));

    const [a, b, c] = players as [Player, Player, Player];
    await expectClean(a, b, c);
    await c.page.close();
    await Promise.all([a, b].map((p) => connectedPeers(p, 1)));
    for (const p of [a, b]) {
      // Its data channels may report the loss before the server's `peer-left` for the closed
      // tab arrives (the server first notices the socket close): wait for the list itself.
      await expect.poll(() => p.page.evaluate(() => window.rallypointDemo.peers.map((x) => x.id))).toEqual([p === a ? b.id : a.id]);
      expect(await p.page.locator(`#arena [data-peer="${c.id}"]`).count()).toBe(0);
    }

    await b.page.evaluate(() => window.rallypointDemo.leave());
    expect(await b.page.evaluate(() => window.rallypointDemo.status)).toBe('left');
    await connectedPeers(a, 0);
    expect(await a.page.evaluate(() => window.rallypointDemo.peers)).toEqual([]);
    await expectClean(a, b);
  });

  it('saves a screenshot of a game in progress to test-artifacts/demo.png', async () => {
    const context = await newContext();
    const room = `shot-${randomUUID().slice(0, 8)}`;
    const alice = await play(context, room);
    const bob = await play(context, room);
    await Promise.all([connectedPeers(alice, 1), connectedPeers(bob, 1)]);
    await seesAt(alice, bob, await move(bob, 'x'));
    await bob.page.fill('#chat-input', 'hello from the other tab');
    await bob.page.press('#chat-input', 'Enter');
    await alice.page.waitForFunction(() => window.rallypointDemo.chat.length === 1);
    await alice.page.waitForFunction(() => typeof window.rallypointDemo.peers[0]?.rttMs === 'number');

    await mkdir(ARTIFACTS, { recursive: true });
    const file = `${ARTIFACTS}/demo.png`;
    await rm(file, { force: true });
    await alice.page.screenshot({ path: file });
    const png = await readFile(file);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    // IHDR: the viewport's size.
    expect(png.toString('latin1', 12, 16)).toBe('IHDR');
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1280, 720]);
    await expectClean(alice, bob);
  });
});
