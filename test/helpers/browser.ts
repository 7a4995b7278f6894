import { accessSync, constants } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { describe } from 'vitest';

/** Debian's Chromium (`apt-get install chromium`); override with CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Headless Chromium as root, offline. Playwright gives every launch a new, empty temporary
 * --user-data-dir and removes it on close.
 */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * By default the suites disable `WebRtcHideLocalIpsWithMdns`, so host candidates carry IP
 * addresses instead of `<uuid>.local` names. werift (the Node peer) cannot resolve mDNS
 * names, and two Chromium peers would depend on multicast DNS working on the test machine.
 * (werift still reaches a Chromium that hides its IPs, through a peer-reflexive candidate
 * learnt from Chromium's connectivity checks: test/browser/node-chromium.test.ts covers both.)
 */
export const NO_MDNS_ARG = '--disable-features=WebRtcHideLocalIpsWithMdns';

/** Why Chromium cannot run here, or null when it can. */
export function chromiumMissing(): string | null {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    return null;
  } catch {
    return `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`;
  }
}

/**
 * `describe` for suites that need Chromium. Outside CI a missing Chromium skips the suite
 * with a printed reason; under CI=true nothing is skipped: the suite runs and fails.
 */
export function describeBrowser(name: string, fn: () => void): void {
  const missing = chromiumMissing();
  if (missing && process.env.CI !== 'true') {
    console.warn(`skipping "${name}": ${missing}`);
    describe.skip(name, fn);
    return;
  }
  describe(name, fn);
}

export function launchChromium(opts: { mdns?: boolean } = {}): Promise<Browser> {
  const missing = chromiumMissing();
  if (missing) throw new Error(missing);
  const args = opts.mdns ? CHROMIUM_ARGS : [...CHROMIUM_ARGS, NO_MDNS_ARG];
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args, timeout: 15_000 });
}

/** Uncaught errors and console errors of a page, for assertions and failure messages. */
export interface PageLog {
  errors: string[];
  console: string[];
}

export function watchPage(page: Page): PageLog {
  const log: PageLog = { errors: [], console: [] };
  page.on('pageerror', (err) => log.errors.push(err.stack ?? err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') log.console.push(`${msg.type()}: ${msg.text()}`);
  });
  return log;
}
