import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, type PageLog, watchPage } from './browser.js';
import { type FixtureServer, startFixtureServer } from './fixture-server.js';
import { type NpmServer, startNpmServer } from './npm-start.js';

/** The fixture pages of test/fixtures/web/ (served by fixture-server.ts) and what they expose. */

export interface PageStats {
  rttMs: number | null;
  path: 'direct' | 'relay' | null;
  packetsLost: number;
  bytesSent: number;
  bytesReceived: number;
  selectedPair: { local: { type?: string; address?: string }; remote: { type?: string; address?: string } } | null;
}

/** lib.html: the rallypoint library from /rallypoint.min.js. Binary messages are recorded as `{ bytes: number[] }`. */
export interface LibPage {
  id: string | null;
  joined: string[];
  connected: string[];
  left: { id: string; reason: string }[];
  messages: { from: string; channel: string; data: unknown }[];
  errors: string[];
  closed: boolean;
  join(options: { room: string; channels?: Record<string, unknown>; meta?: Record<string, unknown> }): Promise<string>;
  connectedIds(): string[];
  send(to: string, channel: string, data: unknown): Promise<void>;
  sendBytes(to: string, channel: string, bytes: number[]): Promise<void>;
  broadcast(channel: string, data: unknown): Promise<void>;
  stats(to: string): Promise<PageStats>;
  leave(): Promise<void>;
}

/** simple-peer.html: simple-peer's browser build, signaling through rallypoint's SignalingClient. */
export interface SimplePeerPage {
  id: string | null;
  remote: string | null;
  connected: boolean;
  received: string[];
  /** simple-peer `signal` blobs as produced, and `signal.data` as received. */
  sent: Record<string, unknown>[];
  receivedBlobs: Record<string, unknown>[];
  errors: string[];
  start(room: string): Promise<string>;
  send(text: string): void;
  close(): Promise<void>;
}

/** rtc.html: a plain RTCPeerConnection that answers a rallypoint peer and echoes. */
export interface RtcPage {
  id: string | null;
  channels: { label: string; ordered: boolean; maxRetransmits: number | null; maxPacketLifeTime: number | null; protocol: string; negotiated: boolean }[];
  received: { label: string; data: string | number[] }[];
  localCandidates: string[];
  errors: string[];
  connectionState: string;
  start(room: string): Promise<string>;
  close(): Promise<void>;
}

declare global {
  interface Window {
    lib: LibPage;
    sp: SimplePeerPage;
    rtc: RtcPage;
  }
}

/** Opens a fixture page that will signal through `wsUrl`, once its module has loaded. */
export async function openFixture(context: BrowserContext, origin: string, name: 'lib.html' | 'simple-peer.html' | 'rtc.html', wsUrl: string): Promise<{ page: Page; log: PageLog }> {
  const page = await context.newPage();
  const log = watchPage(page);
  await page.goto(`${origin}/${name}?ws=${encodeURIComponent(wsUrl)}`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  return { page, log };
}

export interface PageStack {
  fixtures: FixtureServer;
  /** The real `npm start`, allowing the fixture pages' origin. */
  server: NpmServer;
  browser: Browser;
  close(): Promise<void>;
}

/** Fixture pages on their own origin, `npm start` that allows that origin, and Chromium. */
export async function startPageStack(): Promise<PageStack> {
  if (!existsSync(fileURLToPath(new URL('../../dist/web/rallypoint.min.js', import.meta.url)))) {
    throw new Error('no dist/web/rallypoint.min.js: `npm run build` must run `node web/build.mjs`');
  }
  const fixtures = await startFixtureServer();
  const [server, browser] = await Promise.allSettled([startNpmServer({ RALLYPOINT_ORIGINS: fixtures.origin }), launchChromium()]);
  const close = async (): Promise<void> => {
    if (browser.status === 'fulfilled') await browser.value.close();
    if (server.status === 'fulfilled') await server.value.close();
    await fixtures.close();
  };
  if (server.status === 'rejected' || browser.status === 'rejected') {
    await close();
    throw server.status === 'rejected' ? server.reason : (browser as PromiseRejectedResult).reason;
  }
  return { fixtures, server: server.value, browser: browser.value, close };
}
