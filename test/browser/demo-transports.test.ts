/**
 * The demo game with signaling on the HTTP transports (SSE and long-poll, for proxies that break WebSocket), in Chromium, served by the
 * real `npm start`: a page forced onto long-polling plays with a page on a WebSocket, and
 * two pages behind an nginx that strips `Upgrade` (as many corporate proxies do) fall back
 * to Server-Sent Events on their own. The HUD says which transport each page is on.
 */
import { randomUUID } from 'node:crypto';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Transport } from '../../signaling/client/index.js';
import { chromiumMissing, launchChromium } from '../helpers/browser.js';
import { describeNeeding } from '../helpers/child.js';
import { connectedPeers, expectClean, type Player, play, playTogether } from '../helpers/demo-players.js';
import { type NginxServer, nginxMissing, startNginx, stopAllNginx } from '../helpers/nginx.js';
import { type NpmServer, startNpmServer } from '../helpers/npm-start.js';
import { cleanup, defer } from '../helpers/resources.js';

/**
 * The documented nginx config (signaling/deploy/nginx.conf) without the two lines that pass
 * the WebSocket handshake on: nginx then drops the hop-by-hop `Upgrade` and `Connection`
 * headers (RFC 9110 §7.6.1) and the node sees a plain GET. Throws if the lines are gone.
 */
function stripUpgrade(conf: string): string {
  const lines = [/^\s*proxy_set_header Upgrade \$http_upgrade;\n/m, /^\s*proxy_set_header Connection \$connection_upgrade;\n/m];
  return lines.reduce((c, line) => {
    if (!line.test(c)) throw new Error(`nginx.conf has no ${String(line)}: update stripUpgrade`);
    return c.replace(line, '');
  }, conf);
}

/** Resolves once `p`'s header shows `transport` (the demo refreshes it every second). */
async function showsTransport(p: Player, transport: Transport): Promise<void> {
  await p.page.waitForFunction((t) => window.rallypointDemo.transport === t && document.getElementById('transport')?.textContent === t, transport);
}

// Skipped with a reason outside CI when Chromium or nginx is missing; under CI=true it fails.
describeNeeding(chromiumMissing() ?? nginxMissing(), 'demo game over the HTTP transports, in Chromium', () => {
  let server: NpmServer;
  let browser: Browser;
  let starting: [Promise<NpmServer>, Promise<Browser>] | null = null;

  beforeAll(async () => {
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

  afterEach(async () => {
    await cleanup();
    await stopAllNginx();
  });

  async function newContext(): Promise<BrowserContext> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    context.setDefaultTimeout(12_000);
    defer(() => context.close());
    return context;
  }

  it('a page on long-poll (?transports=poll) and a page on a WebSocket play together; the HUD shows poll and websocket', async () => {
    const context = await newContext();
    const room = `poll-${randomUUID().slice(0, 8)}`;
    const alice = await play(context, server.url, room, { transports: 'poll' });
    const bob = await play(context, server.url, room);
    await Promise.all([connectedPeers(alice, 1), connectedPeers(bob, 1)]);
    await Promise.all([showsTransport(alice, 'poll'), showsTransport(bob, 'websocket')]);
    await playTogether(alice, bob);
    // Still where they were forced: nothing moved alice up (poll was her only transport).
    expect(await alice.page.textContent('#transport')).toBe('poll');
    await expectClean(alice, bob);
  });

  it('behind an nginx that strips Upgrade, two pages fall back to SSE and play together; the HUD shows sse', async () => {
    const port = Number(new URL(server.url).port);
    const nginx: NginxServer = await startNginx({ upstreams: [port], tls: false, mutate: stripUpgrade });
    const origin = nginx.httpsUrl; // http://localhost:PORT (tls: false)
    const context = await newContext();
    const room = `strip-${randomUUID().slice(0, 8)}`;
    const alice = await play(context, origin, room);
    const bob = await play(context, origin, room);
    await Promise.all([connectedPeers(alice, 1), connectedPeers(bob, 1)]);
    await Promise.all([showsTransport(alice, 'sse'), showsTransport(bob, 'sse')]);
    await playTogether(alice, bob);
    // The pages did try the WebSocket first, and nginx passed it on without its Upgrade.
    // Each page did try a WebSocket first: nginx passed the handshake on without its
    // Upgrade and the node refused the plain GET (426). Then everything went over HTTP.
    // (A stream is logged when it ends: the SSE GETs are still open here.)
    const log = await nginx.accessLog();
    expect(
      log.filter((l) => l.endsWith('426 "GET /ws HTTP/1.1"')),
      log.join('\n'),
    ).toHaveLength(2);
    const posts = log.filter((l) => / "POST \/ws\?t=send&sid=/.test(l));
    expect(posts.length).toBeGreaterThan(2);
    expect(posts.filter((l) => !/ 204 "POST /.test(l))).toEqual([]);
    await expectClean(alice, bob);
  });
});
