import { randomUUID } from 'node:crypto';
import type { BrowserContext } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeBrowser } from '../helpers/browser.js';
import { openFixture, type PageStack, startPageStack } from '../helpers/pages.js';
import { cleanup, defer } from '../helpers/resources.js';

describeBrowser('simple-peer apps on the rallypoint signaling service (Chromium)', () => {
  let stack: PageStack;
  let starting: Promise<PageStack> | null = null;

  beforeAll(async () => {
    starting = startPageStack();
    stack = await starting;
  }, 30_000);

  // Closes the stack even when beforeAll timed out before it was up.
  afterAll(async () => (await starting?.catch(() => null))?.close(), 30_000);

  afterEach(cleanup);

  async function newContext(): Promise<BrowserContext> {
    const context = await stack.browser.newContext();
    context.setDefaultTimeout(12_000);
    defer(() => context.close());
    return context;
  }

  it('relays simple-peer signal blobs unchanged in signal.data; the peers connect and exchange data', async () => {
    const room = `sp-${randomUUID().slice(0, 8)}`;
    // Two browsers' worth of isolation: one context each.
    const a = await openFixture(await newContext(), stack.fixtures.origin, 'simple-peer.html', stack.server.wsUrl);
    const b = await openFixture(await newContext(), stack.fixtures.origin, 'simple-peer.html', stack.server.wsUrl);
    const aId = await a.page.evaluate((r) => window.sp.start(r), room);
    const bId = await b.page.evaluate((r) => window.sp.start(r), room);
    defer(() => Promise.all([a, b].map((p) => p.page.evaluate(() => window.sp.close()).catch(() => {}))));

    await Promise.all([a, b].map((p) => p.page.waitForFunction(() => window.sp.connected)));
    expect(await a.page.evaluate(() => window.sp.remote)).toBe(bId);
    expect(await b.page.evaluate(() => window.sp.remote)).toBe(aId);

    // B (the newcomer) offered, A answered; candidates trickled both ways.
    const kinds = (blobs: Record<string, unknown>[]): unknown[] => [...new Set(blobs.map((x) => x.type))];
    expect(kinds(await b.page.evaluate(() => window.sp.sent))).toEqual(['offer', 'candidate']);
    expect(kinds(await a.page.evaluate(() => window.sp.sent))).toEqual(['answer', 'candidate']);
    // Every blob arrives exactly as simple-peer produced it, in order (compared once
    // gathering is over and nothing is in flight).
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      await expect
        .poll(async () => {
          const sent = await from.page.evaluate(() => window.sp.sent);
          const got = await to.page.evaluate(() => window.sp.receivedBlobs);
          return JSON.stringify(got) === JSON.stringify(sent);
        })
        .toBe(true);
    }

    await a.page.evaluate(() => window.sp.send('hello from A over simple-peer'));
    await b.page.waitForFunction(() => window.sp.received.includes('hello from A over simple-peer'));
    await b.page.evaluate(() => window.sp.send('hello from B, ünïcödé ✓'));
    await a.page.waitForFunction(() => window.sp.received.includes('hello from B, ünïcödé ✓'));

    for (const p of [a, b]) {
      expect(await p.page.evaluate(() => window.sp.errors)).toEqual([]);
      expect(p.log.errors).toEqual([]);
    }
  });
});
