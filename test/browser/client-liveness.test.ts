/**
 * The SignalingClient's liveness check in Chromium, where WebSocket pings are invisible to
 * the page: the built bundle's client, behind a TCP proxy that freezes its flow (half-open),
 * notices within pingAfterMs + pingTimeoutMs and resumes its session through a new flow.
 */
import { readFile } from 'node:fs/promises';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createNodeSignalingClient } from '../../peer/node.js';
import { type ListeningSignalingServer, listenSignaling } from '../../signaling/server/index.js';
import { describeBrowser, launchChromium } from '../helpers/browser.js';
import { type FreezableProxy, startFreezableProxy } from '../helpers/tcp-proxy.js';

const BUNDLE = new URL('../../dist/web/rallypoint.min.js', import.meta.url);
/** The page: the built bundle as `window.lib`. */
const PAGE = `<!doctype html><title>liveness</title><script type="module">import * as lib from '/rallypoint.min.js'; window.lib = lib;</script>`;
type Lib = typeof import('../../peer/index.js');

describeBrowser('SignalingClient liveness in Chromium', () => {
  let server: ListeningSignalingServer;
  let proxy: FreezableProxy;
  let browser: Browser;

  beforeAll(async () => {
    const bundle = await readFile(BUNDLE);
    server = await listenSignaling({
      port: 0,
      host: '127.0.0.1',
      logger: false,
      // The page comes from this server; its WebSocket goes through the proxy (another port).
      allowedOrigins: '*',
      onRequest: (req, res) => {
        if (req.url === '/rallypoint.min.js') res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(bundle);
        else res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE);
      },
    });
    proxy = await startFreezableProxy(server.port);
    browser = await launchChromium();
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await proxy?.close();
    await server?.close({ timeoutMs: 1_000 });
  }, 30_000);

  it('a half-open connection is noticed and the session resumed, with no help from WebSocket pings', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForFunction(() => 'lib' in window);
    const wsUrl = `ws://127.0.0.1:${proxy.port}/ws`;
    const id = await page.evaluate(async (url) => {
      const w = window as unknown as { lib: Lib; events: string[]; client: InstanceType<Lib['SignalingClient']> };
      const { lib } = w;
      w.events = [];
      const c = new lib.SignalingClient({ url, room: 'lobby', pingAfterMs: 300, pingTimeoutMs: 300 });
      w.client = c;
      c.on('error', (e) => w.events.push(`error ${e.code}`));
      c.on('reconnecting', (i) => w.events.push(`reconnecting ${i.closeCode}`));
      c.on('open', (welcome) => w.events.push(`open ${welcome.id} ${welcome.resumed}`));
      return (await c.connect()).id;
    }, wsUrl);
    // A Node peer in the room, directly connected: it must not see the page's peer leave.
    const other = createNodeSignalingClient({ url: server.wsUrl, room: 'lobby' });
    await other.connect();
    const left: string[] = [];
    other.on('peer-left', (peer) => left.push(peer));

    proxy.freeze();
    await page.waitForFunction((n) => (window as unknown as { events: string[] }).events.length >= n, 4, { timeout: 10_000 });
    const events = await page.evaluate(() => (window as unknown as { events: string[] }).events);
    expect(events).toEqual([`open ${id} false`, 'error timeout', 'reconnecting 4408', `open ${id} true`]);
    expect(proxy.flows).toBe(2);
    // Signals reach the resumed page.
    const got = page.evaluate(
      () =>
        new Promise<unknown>((resolve) => {
          (window as unknown as { client: { on(e: 'signal', cb: (from: string, data: unknown) => void): void } }).client.on('signal', (_from, data) => resolve(data));
        }),
    );
    other.signal(id, { hello: 'again' });
    expect(await got).toEqual({ hello: 'again' });
    expect(left).toEqual([]);
    other.close();
    await page.close();
  });
});
