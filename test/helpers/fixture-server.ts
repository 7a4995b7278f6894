import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const file = (rel: string): string => fileURLToPath(new URL(`../../${rel}`, import.meta.url));

/** Everything the fixture server serves: a fixed list, nothing else. */
const FILES: Record<string, { path: string; type: string }> = {
  '/lib.html': { path: file('test/fixtures/web/lib.html'), type: 'text/html; charset=utf-8' },
  '/simple-peer.html': { path: file('test/fixtures/web/simple-peer.html'), type: 'text/html; charset=utf-8' },
  '/rtc.html': { path: file('test/fixtures/web/rtc.html'), type: 'text/html; charset=utf-8' },
  // The browser bundle exactly as `npm run build` made it, and simple-peer's own browser build.
  '/rallypoint.min.js': { path: file('dist/web/rallypoint.min.js'), type: 'text/javascript; charset=utf-8' },
  '/simplepeer.min.js': { path: file('node_modules/simple-peer/simplepeer.min.js'), type: 'text/javascript; charset=utf-8' },
};

export interface FixtureServer {
  /** `http://127.0.0.1:port`: use it as the allowed origin of the signaling server. */
  origin: string;
  close(): Promise<void>;
}

/**
 * Test pages on their own loopback origin (a page must come from a loopback address to
 * reach the loopback signaling server: Chromium's Local Network Access checks block it
 * otherwise). The signaling server must allow this origin (RALLYPOINT_ORIGINS).
 */
export async function startFixtureServer(): Promise<FixtureServer> {
  const server = createServer((req, res) => {
    const entry = FILES[(req.url ?? '/').split('?')[0] ?? '/'];
    if (!entry || req.method !== 'GET') return void res.writeHead(404).end();
    readFile(entry.path).then(
      (body) => res.writeHead(200, { 'Content-Type': entry.type, 'Cache-Control': 'no-store' }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
