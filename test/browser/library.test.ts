import { randomUUID } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type * as NodePeer from '../../peer/node.js';
import type { Room, RoomMessage } from '../../peer/node.js';
import { describeBrowser, launchChromium, type PageLog } from '../helpers/browser.js';
import { openFixture, type PageStack, startPageStack } from '../helpers/pages.js';
import { cleanup, defer } from '../helpers/resources.js';

/** The Node side runs the built package (`rallypoint/node`: werift with rallypoint's fixes). */
const NODE_ENTRY = new URL('../../dist/peer/node.js', import.meta.url).href;

/** A game-state channel configured the same on every side (unreliable, latest mode, JSON). */
const STATE = { state: { ordered: false, maxRetransmits: 0, latest: true, json: true } };

interface LibTab {
  page: Page;
  log: PageLog;
  id: string;
}

describeBrowser('the peer library in Chromium, with Node (werift) peers', () => {
  let stack: PageStack;
  let node: typeof NodePeer;
  let starting: Promise<PageStack> | null = null;

  beforeAll(async () => {
    starting = startPageStack();
    [stack, node] = await Promise.all([starting, import(NODE_ENTRY) as Promise<typeof NodePeer>]);
  }, 30_000);

  // Closes the stack even when beforeAll timed out before it was up.
  afterAll(async () => (await starting?.catch(() => null))?.close(), 30_000);

  afterEach(cleanup);

  async function newContext(browser: Browser = stack.browser): Promise<BrowserContext> {
    const context = await browser.newContext();
    context.setDefaultTimeout(12_000);
    defer(() => context.close());
    return context;
  }

  /** A lib.html tab (its own browser context) joined to `room`. */
  async function chromiumPeer(room: string, browser?: Browser): Promise<LibTab> {
    const { page, log } = await openFixture(await newContext(browser), stack.fixtures.origin, 'lib.html', stack.server.wsUrl);
    const id = await page.evaluate((opts) => window.lib.join(opts), { room, channels: STATE });
    return { page, log, id };
  }

  async function nodePeer(room: string): Promise<Room> {
    const r = await node.joinRoom({ url: stack.server.wsUrl, room, channels: STATE });
    defer(() => r.leave());
    return r;
  }

  const tabConnectedTo = (tab: LibTab, ids: string[]) => tab.page.waitForFunction((want) => JSON.stringify(window.lib.connectedIds()) === JSON.stringify(want), [...ids].sort());

  function nodeConnectedTo(room: Room, ids: string[]): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (ids.every((id) => room.peers.get(id)?.connected)) {
          room.off('peer-connected', check);
          resolve();
        }
      };
      room.on('peer-connected', check);
      check();
    });
  }

  /** The data of the first message on `room` that matches. */
  function nodeReceives(room: Room, from: string, channel: string, match: (data: unknown) => boolean = () => true): Promise<unknown> {
    return new Promise((resolve) => {
      const on = (m: RoomMessage): void => {
        if (m.peer.id === from && m.channel === channel && match(m.data)) {
          room.off('message', on);
          resolve(m.data);
        }
      };
      room.on('message', on);
    });
  }

  const tabReceives = (tab: LibTab, from: string, channel: string, data: unknown) =>
    tab.page.waitForFunction((want) => window.lib.messages.some((m) => m.from === want.from && m.channel === want.channel && JSON.stringify(m.data) === JSON.stringify(want.data)), {
      from,
      channel,
      data,
    });

  async function expectClean(...tabs: LibTab[]): Promise<void> {
    for (const t of tabs) {
      expect(t.log.errors).toEqual([]);
      expect(await t.page.evaluate(() => window.lib.errors)).toEqual([]);
    }
  }

  it('Chromium <-> Chromium: reliable text and bytes, unreliable, latest-mode JSON, stats, leave', async () => {
    const room = `cc-${randomUUID().slice(0, 8)}`;
    const a = await chromiumPeer(room);
    const b = await chromiumPeer(room);
    await Promise.all([tabConnectedTo(a, [b.id]), tabConnectedTo(b, [a.id])]);

    await a.page.evaluate((to) => window.lib.send(to, 'reliable', 'hello B'), b.id);
    await a.page.evaluate((to) => window.lib.sendBytes(to, 'reliable', [0, 1, 2, 127, 128, 253, 254, 255]), b.id);
    await b.page.evaluate((to) => window.lib.send(to, 'unreliable', 'hi A, unreliably'), a.id);
    await tabReceives(b, a.id, 'reliable', 'hello B');
    await tabReceives(b, a.id, 'reliable', { bytes: [0, 1, 2, 127, 128, 253, 254, 255] });
    await tabReceives(a, b.id, 'unreliable', 'hi A, unreliably');
    // Reliable is ordered: text before bytes, exactly once each.
    expect(await b.page.evaluate(() => window.lib.messages.filter((m) => m.channel === 'reliable').map((m) => m.data))).toEqual(['hello B', { bytes: [0, 1, 2, 127, 128, 253, 254, 255] }]);

    // Latest mode: whatever arrives, arrives newest-last, and the newest arrives.
    for (let n = 1; n <= 20; n++) await a.page.evaluate(([to, n]) => window.lib.send(to, 'state', { n }), [b.id, n] as const);
    await tabReceives(b, a.id, 'state', { n: 20 });
    const seen = await b.page.evaluate(() => window.lib.messages.filter((m) => m.channel === 'state').map((m) => (m.data as { n: number }).n));
    expect(seen).toEqual([...seen].sort((x, y) => x - y));
    expect(new Set(seen).size).toBe(seen.length);

    const stats = await a.page.evaluate((to) => window.lib.stats(to), b.id);
    expect(stats).toMatchObject({ path: 'direct', packetsLost: 0 });
    expect(stats.rttMs).toBeGreaterThanOrEqual(0);
    expect(stats.bytesSent).toBeGreaterThan(0);

    await b.page.evaluate(() => window.lib.leave());
    expect(await b.page.evaluate(() => window.lib.closed)).toBe(true);
    await a.page.waitForFunction((id) => window.lib.left.some((l) => l.id === id && l.reason === 'left'), b.id);
    expect(await a.page.evaluate(() => window.lib.connectedIds())).toEqual([]);
    await expectClean(a, b);
  });

  it('Node (werift, offering) <-> Chromium (answering): messages both ways on reliable and unreliable', async () => {
    const room = `nc-${randomUUID().slice(0, 8)}`;
    const tab = await chromiumPeer(room);
    const n = await nodePeer(room);
    const errors: string[] = [];
    n.on('error', (e) => errors.push(e.message));
    await Promise.all([nodeConnectedTo(n, [tab.id]), tabConnectedTo(tab, [n.id])]);
    const peer = n.peers.get(tab.id) as NonNullable<ReturnType<typeof n.peers.get>>;

    // Node -> Chromium
    await peer.send('reliable', 'from node, reliably');
    await peer.send('reliable', new Uint8Array([9, 8, 7, 0, 255]));
    await peer.send('unreliable', 'from node, unreliably');
    await peer.send('state', { x: 1, y: 2 });
    await tabReceives(tab, n.id, 'reliable', 'from node, reliably');
    await tabReceives(tab, n.id, 'reliable', { bytes: [9, 8, 7, 0, 255] });
    await tabReceives(tab, n.id, 'unreliable', 'from node, unreliably');
    await tabReceives(tab, n.id, 'state', { x: 1, y: 2 });

    // Chromium -> Node
    const reliable = nodeReceives(n, tab.id, 'reliable');
    const bytes = nodeReceives(n, tab.id, 'reliable', (d) => d instanceof Uint8Array);
    const unreliable = nodeReceives(n, tab.id, 'unreliable');
    const state = nodeReceives(n, tab.id, 'state');
    await tab.page.evaluate((to) => window.lib.send(to, 'reliable', 'from chromium, reliably'), n.id);
    await tab.page.evaluate((to) => window.lib.sendBytes(to, 'reliable', [1, 2, 3, 250]), n.id);
    await tab.page.evaluate((to) => window.lib.send(to, 'unreliable', 'from chromium, unreliably'), n.id);
    await tab.page.evaluate((to) => window.lib.send(to, 'state', { x: 3, y: 4 }), n.id);
    expect(await reliable).toBe('from chromium, reliably');
    expect([...((await bytes) as Uint8Array)]).toEqual([1, 2, 3, 250]);
    expect(await unreliable).toBe('from chromium, unreliably');
    expect(await state).toEqual({ x: 3, y: 4 });

    expect((await peer.stats()).path).toBe('direct');
    expect((await tab.page.evaluate((to) => window.lib.stats(to), n.id)).path).toBe('direct');
    expect(errors).toEqual([]);
    await expectClean(tab);
  });

  it('a mesh of one Node peer and two Chromium peers (Chromium offering to Node); the Node peer leaves', async () => {
    const room = `mix-${randomUUID().slice(0, 8)}`;
    const n = await nodePeer(room);
    const b = await chromiumPeer(room);
    const c = await chromiumPeer(room);
    await Promise.all([nodeConnectedTo(n, [b.id, c.id]), tabConnectedTo(b, [n.id, c.id]), tabConnectedTo(c, [n.id, b.id])]);

    const atNode = [nodeReceives(n, b.id, 'reliable', (d) => d === `hi from ${b.id}`), nodeReceives(n, c.id, 'reliable', (d) => d === `hi from ${c.id}`)];
    await n.broadcast('reliable', `hi from ${n.id}`);
    for (const tab of [b, c]) await tab.page.evaluate((id) => window.lib.broadcast('reliable', `hi from ${id}`), tab.id);
    await Promise.all(atNode);
    for (const [tab, other] of [
      [b, c],
      [c, b],
    ] as const) {
      await tabReceives(tab, n.id, 'reliable', `hi from ${n.id}`);
      await tabReceives(tab, other.id, 'reliable', `hi from ${other.id}`);
    }

    await n.leave();
    for (const [tab, other] of [
      [b, c],
      [c, b],
    ] as const) {
      await tab.page.waitForFunction((id) => window.lib.left.some((l) => l.id === id && l.reason === 'left'), n.id);
      expect(await tab.page.evaluate(() => window.lib.connectedIds())).toEqual([other.id]);
    }
    await expectClean(b, c);
  });

  /** A Node peer opens the default channels plus two more to a plain RTCPeerConnection in Chromium. */
  async function dcepCheck(browser: Browser): Promise<{ candidates: string[]; remoteType: string | undefined }> {
    const room = `dcep-${randomUUID().slice(0, 8)}`;
    const { page, log } = await openFixture(await newContext(browser), stack.fixtures.origin, 'rtc.html', stack.server.wsUrl);
    const tabId = await page.evaluate((r) => window.rtc.start(r), room);
    defer(() => page.evaluate(() => window.rtc.close()).catch(() => {}));
    const n = await node.joinRoom({
      url: stack.server.wsUrl,
      room,
      channels: { timed: { ordered: false, maxPacketLifeTime: 150 }, 'ordered-rexmit': { ordered: true, maxRetransmits: 2 } },
    });
    defer(() => n.leave());
    await nodeConnectedTo(n, [tabId]);
    await page.waitForFunction(() => window.rtc.channels.length === 4);
    const channels = await page.evaluate(() => window.rtc.channels);
    const byLabel = Object.fromEntries(channels.map(({ label, ...rest }) => [label, rest]));
    // What Chromium parsed from werift's DATA_CHANNEL_OPEN (RFC 8832): unordered and partial
    // reliability survive (werift 0.24 unpatched announces these channels as ordered).
    const base = { protocol: '', negotiated: false };
    expect(byLabel).toEqual({
      reliable: { ...base, ordered: true, maxRetransmits: null, maxPacketLifeTime: null },
      unreliable: { ...base, ordered: false, maxRetransmits: 0, maxPacketLifeTime: null },
      timed: { ...base, ordered: false, maxRetransmits: null, maxPacketLifeTime: 150 },
      'ordered-rexmit': { ...base, ordered: true, maxRetransmits: 2, maxPacketLifeTime: null },
    });

    // The channels carry data both ways: the page echoes.
    const peer = n.peers.get(tabId) as NonNullable<ReturnType<typeof n.peers.get>>;
    for (const label of ['unreliable', 'timed']) {
      const echo = nodeReceives(n, tabId, label, (d) => d === `ping ${label}`);
      await peer.send(label, `ping ${label}`);
      expect(await echo).toBe(`ping ${label}`);
    }
    expect(await page.evaluate(() => window.rtc.errors)).toEqual([]);
    expect(log.errors).toEqual([]);
    const remoteType = (await peer.stats()).selectedPair?.remote.type;
    return { candidates: await page.evaluate(() => window.rtc.localCandidates), remoteType };
  }

  it('werift DCEP fix as Chromium sees it: {ordered:false, maxRetransmits:0} arrives unordered with 0 retransmits', async () => {
    const { candidates } = await dcepCheck(stack.browser);
    // This suite's Chromium announces IP host candidates (mDNS hiding disabled).
    const hosts = candidates.filter((c) => / typ host /.test(c));
    expect(hosts.length).toBeGreaterThan(0);
    expect(hosts.filter((c) => /\.local /.test(c))).toEqual([]);
  });

  it('with Chromium defaults (host candidates as mDNS names) werift still connects, through a peer-reflexive candidate', async () => {
    const browser = await launchChromium({ mdns: true });
    defer(() => browser.close());
    const { candidates, remoteType } = await dcepCheck(browser);
    const hosts = candidates.filter((c) => / typ host /.test(c));
    expect(hosts.length).toBeGreaterThan(0);
    expect(hosts.every((c) => /\.local /.test(c))).toBe(true);
    // werift cannot resolve `<uuid>.local`: it learnt Chromium's address from its checks.
    expect(remoteType).toBe('prflx');
  });
});
