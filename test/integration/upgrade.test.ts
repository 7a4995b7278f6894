import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { UPGRADE_REFUSALS } from '../../signaling/protocol/index.js';
import { type Grant, signToken, verifyToken } from '../../signaling/server/index.js';
import { type HttpResult, rawUpgrade } from '../helpers/http.js';
import { cleanup, defer, deferred } from '../helpers/resources.js';
import { metricValue, startServer, type TestServer } from '../helpers/server.js';

afterEach(cleanup);

const SECRET = 'upgrade-test-secret-0123456789ab';

function expectRefusal(res: HttpResult, reason: keyof typeof UPGRADE_REFUSALS): void {
  expect(res.status).toBe(UPGRADE_REFUSALS[reason]);
  expect(res.headers['x-rallypoint-refusal']).toBe(reason);
  expect(res.headers.connection).toBe('close');
  expect(res.body).toBe(`${reason}\n`);
}

async function refusals(srv: TestServer, reason: string): Promise<number | undefined> {
  return metricValue(await srv.scrape(), 'rallypoint_upgrade_refusals_total', { reason });
}

describe('upgrade: path', () => {
  it('refuses another path with 404 before any 101, and counts it', async () => {
    const srv = await startServer();
    expectRefusal(await rawUpgrade(`${srv.url}/nope`), 'bad-path');
    expectRefusal(await rawUpgrade(`${srv.url}/ws/extra`), 'bad-path');
    expect(await refusals(srv, 'bad-path')).toBe(2);
    // A refusal never became a connection.
    const text = await srv.scrape();
    expect(metricValue(text, 'rallypoint_connections')).toBe(0);
    expect(text).not.toMatch(/^rallypoint_closes_total\{/m);
  });

  it('refuses an unparseable request target with 400 bad-request', async () => {
    const srv = await startServer();
    expectRefusal(await rawUpgrade(`${srv.url}//`), 'bad-request');
    expect(await refusals(srv, 'bad-request')).toBe(1);
  });

  it('accepts the signaling path with a query string, and a custom path', async () => {
    const srv = await startServer();
    expect((await rawUpgrade(`${srv.url}/ws?x=1`)).status).toBe(101);
    const custom = await startServer({ path: '/signal/v1' });
    expect((await rawUpgrade(`${custom.url}/signal/v1`)).status).toBe(101);
    expectRefusal(await rawUpgrade(`${custom.url}/ws`), 'bad-path');
  });

  it('upgrades a real ws client and selects the rallypoint.v1 subprotocol', async () => {
    const srv = await startServer();
    const c = await srv.connect({ protocols: ['something.else', 'rallypoint.v1'] });
    expect(c.ws.protocol).toBe('rallypoint.v1');
  });
});

describe('upgrade: origin', () => {
  it('by default allows requests without Origin and from the same origin (Host), refuses others with 403', async () => {
    const srv = await startServer();
    const host = new URL(srv.url).host;
    expect((await rawUpgrade(srv.wsUrl, { Origin: null })).status).toBe(101);
    expect((await rawUpgrade(srv.wsUrl, { Origin: `http://${host}` })).status).toBe(101);
    expect((await rawUpgrade(srv.wsUrl, { Origin: `https://${host}` })).status).toBe(101);
    expectRefusal(await rawUpgrade(srv.wsUrl, { Origin: 'https://evil.example' }), 'bad-origin');
    expectRefusal(await rawUpgrade(srv.wsUrl, { Origin: `http://${host}.evil.example` }), 'bad-origin');
    expectRefusal(await rawUpgrade(srv.wsUrl, { Origin: 'null' }), 'bad-origin');
    expect(await refusals(srv, 'bad-origin')).toBe(3);
    // A browser-like client from the page's own origin.
    const c = await srv.connect({ origin: `http://${host}` });
    expect(c.ws.readyState).toBe(c.ws.OPEN);
  });

  it('with an allowedOrigins list allows exactly those origins (not even its own Host)', async () => {
    const srv = await startServer({ allowedOrigins: ['https://app.example', 'http://localhost:3000'] });
    const host = new URL(srv.url).host;
    expect((await rawUpgrade(srv.wsUrl, { Origin: 'https://app.example' })).status).toBe(101);
    expect((await rawUpgrade(srv.wsUrl, { Origin: 'http://localhost:3000' })).status).toBe(101);
    expect((await rawUpgrade(srv.wsUrl, { Origin: null })).status).toBe(101);
    expectRefusal(await rawUpgrade(srv.wsUrl, { Origin: 'http://app.example' }), 'bad-origin');
    expectRefusal(await rawUpgrade(srv.wsUrl, { Origin: 'https://app.example:8443' }), 'bad-origin');
    expectRefusal(await rawUpgrade(srv.wsUrl, { Origin: `http://${host}` }), 'bad-origin');
  });

  it("with '*' allows every origin", async () => {
    const srv = await startServer({ allowedOrigins: '*' });
    expect((await rawUpgrade(srv.wsUrl, { Origin: 'https://anywhere.example' })).status).toBe(101);
    expect((await rawUpgrade(srv.wsUrl, { Origin: 'null' })).status).toBe(101);
  });
});

describe('upgrade: subprotocol', () => {
  it('refuses a missing or unsupported subprotocol with 400', async () => {
    const srv = await startServer();
    expectRefusal(await rawUpgrade(srv.wsUrl, { 'Sec-WebSocket-Protocol': null }), 'bad-subprotocol');
    expectRefusal(await rawUpgrade(srv.wsUrl, { 'Sec-WebSocket-Protocol': 'rallypoint.v2' }), 'bad-subprotocol');
    expectRefusal(await rawUpgrade(srv.wsUrl, { 'Sec-WebSocket-Protocol': 'chat, superchat' }), 'bad-subprotocol');
    expect(await refusals(srv, 'bad-subprotocol')).toBe(3);
    const ok = await rawUpgrade(srv.wsUrl, { 'Sec-WebSocket-Protocol': 'chat, rallypoint.v1' });
    expect(ok.status).toBe(101);
    expect(ok.headers['sec-websocket-protocol']).toBe('rallypoint.v1');
  });

  it('refuses a ws client that offers no subprotocol (it sees the 400, never an open socket)', async () => {
    const srv = await startServer();
    await expect(srv.connect({ protocols: [] })).rejects.toThrow(/400/);
  });
});

describe('upgrade: tokens', () => {
  it('refuses a missing, malformed, forged or expired token with 401 and WWW-Authenticate', async () => {
    const srv = await startServer({ secret: SECRET });
    const forged = await signToken('some-other-secret-0123456789abcd', { ttlSeconds: 60 });
    const expired = await signToken(SECRET, { ttlSeconds: -60 });
    expect(await verifyToken(SECRET, expired)).toBeNull();
    expect(await verifyToken(SECRET, forged)).toBeNull();

    const cases: Record<string, string | null>[] = [
      {},
      { Authorization: 'Bearer not.a.jwt' },
      { Authorization: `Bearer ${forged}` },
      { Authorization: `Bearer ${expired}` },
      { Authorization: `Basic ${Buffer.from('user:pass').toString('base64')}` },
    ];
    for (const headers of cases) {
      const res = await rawUpgrade(srv.wsUrl, headers);
      expectRefusal(res, 'unauthorized');
      expect(res.headers['www-authenticate']).toBe('Bearer');
    }
    expectRefusal(await rawUpgrade(`${srv.wsUrl}?token=${forged}`), 'unauthorized');
    expectRefusal(await rawUpgrade(`${srv.wsUrl}?token=${expired}`), 'unauthorized');
    expect(await refusals(srv, 'unauthorized')).toBe(cases.length + 2);
  });

  it('refuses a token without exp, even when correctly signed', async () => {
    const { SignJWT } = await import('jose');
    const noExp = await new SignJWT({ room: 'r' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
    const srv = await startServer({ secret: SECRET });
    expectRefusal(await rawUpgrade(srv.wsUrl, { Authorization: `Bearer ${noExp}` }), 'unauthorized');
  });

  it('accepts a valid token in Authorization: Bearer and in ?token=', async () => {
    const srv = await startServer({ secret: SECRET });
    const token = await signToken(SECRET, { ttlSeconds: 60, sub: 'alice' });
    const viaHeader = await srv.connect({ headers: { Authorization: `Bearer ${token}` } });
    expect((await viaHeader.join('any-room')).room).toBe('any-room');
    const viaQuery = await srv.connect({ query: `?token=${encodeURIComponent(token)}` });
    expect((await viaQuery.join('any-room')).peers).toHaveLength(1);
  });

  it("restricts a connection to the token's room claim", async () => {
    const srv = await startServer({ secret: SECRET });
    const token = await signToken(SECRET, { ttlSeconds: 60, room: 'team-1' });
    expect(await verifyToken(SECRET, token)).toEqual({ room: 'team-1' });
    const ok = await srv.connect({ query: `?token=${token}` });
    expect((await ok.join('team-1')).room).toBe('team-1');
    const bad = await srv.connect({ query: `?token=${token}` });
    expect((await bad.expectError({ type: 'join', room: 'team-2' })).code).toBe('unauthorized');
    expect((await bad.closed).code).toBe(4003);
  });
});

describe('upgrade: verify hook', () => {
  it('refuses with 401 when verify returns false, accepts on true, and sees the request', async () => {
    const seen: IncomingMessage[] = [];
    const srv = await startServer({
      verify: (req) => {
        seen.push(req);
        return req.headers['x-api-key'] === 'k1';
      },
    });
    expectRefusal(await rawUpgrade(srv.wsUrl, { 'X-Api-Key': 'wrong' }), 'unauthorized');
    const c = await srv.connect({ headers: { 'X-Api-Key': 'k1' } });
    expect((await c.join('r')).room).toBe('r');
    expect(seen.map((r) => r.url)).toEqual(['/ws', '/ws']);
  });

  it('applies a Grant returned (asynchronously) by verify: its room restricts joins', async () => {
    const srv = await startServer({ verify: async (): Promise<Grant> => ({ room: 'granted', sub: 'svc' }) });
    const ok = await srv.connect();
    expect((await ok.join('granted')).room).toBe('granted');
    const bad = await srv.connect();
    expect(await bad.expectError({ type: 'join', room: 'other', ref: 'v' })).toMatchObject({ code: 'unauthorized', ref: 'v' });
    expect((await bad.closed).code).toBe(4003);
  });

  it('runs after the token check, and its Grant overrides the token claims', async () => {
    let calls = 0;
    const srv = await startServer({
      secret: SECRET,
      verify: () => {
        calls++;
        return { room: 'from-hook' };
      },
    });
    expectRefusal(await rawUpgrade(srv.wsUrl), 'unauthorized');
    expect(calls).toBe(0);
    const token = await signToken(SECRET, { ttlSeconds: 60, room: 'from-token' });
    const c = await srv.connect({ query: `?token=${token}` });
    expect(calls).toBe(1);
    expect((await c.join('from-hook')).room).toBe('from-hook');
  });

  it('refuses with 401 (and logs) when verify throws', async () => {
    const srv = await startServer({
      verify: () => {
        throw new Error('auth backend down');
      },
    });
    expectRefusal(await rawUpgrade(srv.wsUrl), 'unauthorized');
    const line = await srv.logs.waitFor((l) => l.msg === 'upgrade check failed');
    expect(JSON.stringify(line.err)).toContain('auth backend down');
  });
});

describe('upgrade: capacity', () => {
  it('refuses beyond maxConnections with 503 server-full, and accepts again once a connection closed', async () => {
    const srv = await startServer({ limits: { maxConnections: 2, maxConnectionsPerIp: 0 } });
    const a = await srv.connect();
    await srv.connect();
    expectRefusal(await rawUpgrade(srv.wsUrl), 'server-full');
    await expect(srv.connect()).rejects.toThrow(/503/);
    expect(await refusals(srv, 'server-full')).toBe(2);

    await a.close(1000);
    await srv.logs.closeCount(1);
    expect((await srv.connect()).ws.protocol).toBe('rallypoint.v1');
  });

  it('refuses beyond maxConnectionsPerIp with 429 ip-full, and frees the slot on close', async () => {
    const srv = await startServer({ limits: { maxConnectionsPerIp: 2 } });
    const a = await srv.connect();
    await srv.connect();
    expectRefusal(await rawUpgrade(srv.wsUrl), 'ip-full');
    expect(await refusals(srv, 'ip-full')).toBe(1);

    await a.terminate();
    await srv.logs.closeCount(1);
    await srv.connect();
    expectRefusal(await rawUpgrade(srv.wsUrl), 'ip-full');
  });

  it('counts X-Forwarded-For addresses separately only with trustProxy', async () => {
    // true is one trusted hop: the rightmost entry is the address our proxy saw.
    const trusting = await startServer({ trustProxy: true, limits: { maxConnectionsPerIp: 1 } });
    await trusting.connect({ headers: { 'X-Forwarded-For': '10.0.0.1, 203.0.113.7' } });
    await trusting.connect({ headers: { 'X-Forwarded-For': '203.0.113.8' } });
    expectRefusal(await rawUpgrade(trusting.wsUrl, { 'X-Forwarded-For': '203.0.113.7' }), 'ip-full');

    const direct = await startServer({ limits: { maxConnectionsPerIp: 1 } });
    await direct.connect({ headers: { 'X-Forwarded-For': '203.0.113.7' } });
    expectRefusal(await rawUpgrade(direct.wsUrl, { 'X-Forwarded-For': '203.0.113.8' }), 'ip-full');
  });

  it('counts upgrades still in an async auth check against maxConnectionsPerIp and maxConnections', async () => {
    // verify() holds each upgrade until the test lets it go. Should a second upgrade reach
    // verify (the bug this guards against), everything is let go so the test fails fast.
    const waiting: (() => void)[] = [];
    const releaseAll = (): void => {
      for (const release of waiting.splice(0)) release();
    };
    let held = deferred();
    const gatedVerify = (): Promise<boolean> =>
      new Promise((resolve) => {
        waiting.push(() => resolve(true));
        held.resolve();
        if (waiting.length > 1) releaseAll();
      });

    const perIp = await startServer({ verify: gatedVerify, limits: { maxConnectionsPerIp: 1 } });
    defer(releaseAll); // after the server: cleanup lets held upgrades go before closing it
    const first = rawUpgrade(perIp.wsUrl);
    await held.promise;
    // The second request is refused at once: the first one holds the IP's only slot.
    expectRefusal(await rawUpgrade(perIp.wsUrl), 'ip-full');
    releaseAll();
    expect((await first).status).toBe(101);

    held = deferred();
    const total = await startServer({ verify: gatedVerify, limits: { maxConnections: 1, maxConnectionsPerIp: 0 } });
    defer(releaseAll);
    const one = rawUpgrade(total.wsUrl);
    await held.promise;
    expectRefusal(await rawUpgrade(total.wsUrl), 'server-full');
    releaseAll();
    expect((await one).status).toBe(101);
  });

  it('does not leak a per-IP slot when the WebSocket layer rejects a malformed handshake', async () => {
    const srv = await startServer({ limits: { maxConnectionsPerIp: 1 } });
    const badKey = await rawUpgrade(srv.wsUrl, { 'Sec-WebSocket-Key': 'not-a-valid-key' });
    expect(badKey.status).toBe(400);
    const badVersion = await rawUpgrade(srv.wsUrl, { 'Sec-WebSocket-Version': '12' });
    expect(badVersion.status).toBe(400);
    expect(await refusals(srv, 'bad-request')).toBe(2);
    // The only slot of this IP is still free.
    const c = await srv.connect();
    expect((await c.join('r')).room).toBe('r');
  });
});
