import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { SUBPROTOCOL } from '../../signaling/protocol/index.js';
import { type Clock, listenSignaling } from '../../signaling/server/index.js';
import { httpGet, rawUpgrade } from '../helpers/http.js';
import { cleanup, defer } from '../helpers/resources.js';
import { GatedStore, metricValue, startFakeClockServer, startServer } from '../helpers/server.js';

afterEach(cleanup);

/** Completes a WebSocket handshake by hand, then never answers anything (not even a close frame). */
function openSilentSocket(wsUrl: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const req = request(wsUrl.replace(/^ws/, 'http'), {
      agent: false,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        'Sec-WebSocket-Protocol': SUBPROTOCOL,
      },
    });
    req.on('upgrade', (_res, socket) => {
      defer(() => socket.destroy());
      socket.on('data', () => {});
      socket.on('error', () => {});
      resolve(socket);
    });
    req.on('response', (res) => reject(new Error(`upgrade refused: ${res.statusCode ?? '?'}`)));
    req.on('error', reject);
    req.end();
  });
}

/** Like systemClock but with ref'd timers, so process.getActiveResourcesInfo() sees them. */
const refClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/**
 * libuv frees a closed handle in the close phase of a later loop iteration, after the JS
 * 'close' callbacks ran; two turns of the loop (not a timer) let that bookkeeping finish.
 */
async function settle(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
}

const WATCHED = ['TCPServerWrap', 'TCPSocketWrap', 'Timeout'] as const;
function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(WATCHED.map((t) => [t, 0]));
  for (const r of process.getActiveResourcesInfo()) if (r in counts) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

describe('graceful shutdown', () => {
  it('closes every client with 1001 and ends, closing the HTTP server it created', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    const idle = await srv.connect();

    await srv.close();
    for (const c of [a.client, b.client, idle]) expect((await c.closed).code).toBe(1001);
    expect(srv.http.listening).toBe(false);
    expect(srv.server.connectionCount).toBe(0);
    // Nobody got a peer-left: they were all being closed anyway, and the frames they did get are valid.
    for (const c of [a.client, b.client, idle]) expect(c.invalid).toEqual([]);
  });

  it('is idempotent: every call returns the same promise', async () => {
    const srv = await startServer();
    await srv.connect();
    const p1 = srv.close();
    const p2 = srv.close();
    const p3 = srv.server.close({ timeoutMs: 1 });
    expect(p2).toBe(p1);
    expect(p3).toBe(p1);
    await p1;
    await expect(srv.close()).resolves.toBeUndefined();
  });

  it('while closing: refuses upgrades with 503 shutting-down and answers /healthz 503 closing', async () => {
    const store = new GatedStore({ maxPeersPerRoom: 8, maxRooms: 8 });
    const srv = await startServer({ store });
    // Registered after the server, so cleanup opens the gate before it awaits close().
    defer(() => store.release());
    const a = await srv.joined('r');
    const healthy = await httpGet(`${srv.url}/healthz`);
    expect(healthy.status).toBe(200);

    const closing = srv.close();
    await store.closeStarted.promise;
    expect((await a.client.closed).code).toBe(1001);

    const refused = await rawUpgrade(srv.wsUrl);
    expect(refused.status).toBe(503);
    expect(refused.headers['x-rallypoint-refusal']).toBe('shutting-down');
    await expect(srv.connect()).rejects.toThrow(/503/);
    const health = await httpGet(`${srv.url}/healthz`);
    expect(health.status).toBe(503);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'closing', connections: 0 });
    expect(metricValue(await srv.scrape(), 'rallypoint_upgrade_refusals_total', { reason: 'shutting-down' })).toBe(2);

    store.release();
    await closing;
    expect(srv.http.listening).toBe(false);
  });

  it('terminates clients that do not finish the closing handshake within timeoutMs', async () => {
    const srv = await startServer();
    const polite = await srv.connect();
    const silent = await openSilentSocket(srv.wsUrl);
    const silentClosed = once(silent, 'close');

    await srv.close({ timeoutMs: 100 });
    await silentClosed;
    expect((await polite.closed).code).toBe(1001);
    expect(srv.server.connectionCount).toBe(0);
  });

  it('ends every session (also those in their grace period) and clears every timer', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: 10_000 } });
    const a = await srv.joined('r');
    await srv.joined('r');
    await a.client.terminate();
    await srv.logs.closed(a.id);
    expect(srv.clock.pending()).toEqual({ timeouts: 1, intervals: 1 });

    await srv.close();
    expect(srv.clock.pending()).toEqual({ timeouts: 0, intervals: 0 });
    expect(srv.server.store.stats()).toEqual({ rooms: 0, peers: 0 });
    expect(srv.server.sessions.size).toBe(0);
  });

  it('leaves no active handles or timers behind', async () => {
    await settle();
    const before = resourceCounts();
    const srv = await startServer({ clock: refClock, limits: { resumeGraceMs: 60_000, pingIntervalMs: 60_000 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.terminate(); // its session waits in a (ref'd) grace timer
    await srv.logs.closed(a.id);
    const during = resourceCounts();
    expect(during.TCPServerWrap).toBe((before.TCPServerWrap ?? 0) + 1);
    expect(during.Timeout).toBeGreaterThanOrEqual((before.Timeout ?? 0) + 2); // heartbeat + grace

    await srv.close();
    await b.client.closed;
    await settle();
    expect(resourceCounts()).toEqual(before);
  });

  it('listenSignaling on a taken port rejects and leaves no timer or handle behind', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    defer(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const { port } = blocker.address() as AddressInfo;
    await settle();
    const before = resourceCounts();
    await expect(listenSignaling({ port, host: '127.0.0.1', logger: false, clock: refClock })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await settle();
    expect(resourceCounts()).toEqual(before);
  });
});
