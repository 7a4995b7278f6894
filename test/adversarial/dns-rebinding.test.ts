/**
 * DNS rebinding: a page on evil.example whose name the attacker re-points at 127.0.0.1
 * reaches a local server as evil.example. Its upgrade carries Origin http://evil.example:P
 * and Host evil.example:P, which the same-origin check alone lets through. The Host must
 * now name this server when the connection arrived on a loopback or private address (the
 * only servers rebinding reaches; test/unit/host-check.test.ts covers the decision).
 */
import dns from 'node:dns';
import { afterEach, describe, expect, it } from 'vitest';
import { UPGRADE_REFUSALS } from '../../signaling/protocol/index.js';
import { InvalidOptionsError, listenSignaling } from '../../signaling/server/index.js';
import { rawUpgrade } from '../helpers/http.js';
import { cleanup } from '../helpers/resources.js';
import { metricValue, startServer, type TestServer } from '../helpers/server.js';

afterEach(cleanup);

/** The headers of a browser page at `origin` that reached the server as `host`. */
const browser = (host: string, origin = `http://${host}`): Record<string, string> => ({ Host: host, Origin: origin });

describe('adversarial: DNS rebinding', () => {
  it('refuses a browser upgrade whose Host is a name the server was not started for (403 bad-host)', async () => {
    const srv = await startServer();
    const res = await rawUpgrade(srv.wsUrl, browser(`evil.example:${srv.port}`));
    expect(res.status).toBe(UPGRADE_REFUSALS['bad-host']);
    expect(res.headers['x-rallypoint-refusal']).toBe('bad-host');
    expect(metricValue(await srv.scrape(), 'rallypoint_upgrade_refusals_total', { reason: 'bad-host' })).toBe(1);
  });

  it('allows loopback names, IP literals, and names given in allowedHosts (a leading dot for subdomains)', async () => {
    const srv = await startServer({ allowedHosts: ['game.example', '.lan.example'] });
    for (const host of [`localhost:${srv.port}`, `app.localhost:${srv.port}`, `127.0.0.1:${srv.port}`, `[::1]:${srv.port}`, 'game.example', 'lan.example', 'box.lan.example:8080']) {
      expect((await rawUpgrade(srv.wsUrl, browser(host))).status, host).toBe(101);
    }
    for (const host of ['evil.example', 'game.example.evil.example', 'xlan.example']) {
      expect((await rawUpgrade(srv.wsUrl, browser(host))).status, host).toBe(UPGRADE_REFUSALS['bad-host']);
    }
  });

  it('allows the host name listenSignaling was started for', async () => {
    // A name that is none of the defaults: resolve it to loopback for the listen only.
    const name = 'rallypoint-started-for.example';
    const lookup = dns.lookup;
    (dns as { lookup: unknown }).lookup = (host: string, ...rest: unknown[]): unknown => (lookup as (...a: unknown[]) => unknown)(host === name ? '127.0.0.1' : host, ...rest);
    let srv: TestServer;
    try {
      srv = await startServer({ host: name });
    } finally {
      (dns as { lookup: unknown }).lookup = lookup;
    }
    expect((await rawUpgrade(srv.wsUrl.replace(name, '127.0.0.1'), browser(`${name}:${srv.port}`))).status).toBe(101);
    expect((await rawUpgrade(srv.wsUrl.replace(name, '127.0.0.1'), browser(`other-${name}:${srv.port}`))).status).toBe(UPGRADE_REFUSALS['bad-host']);
    // ... without turning the Host check on where an explicit origin list protects instead.
    const listed = await startServer({ host: 'localhost', allowedOrigins: ['https://game.example'] });
    expect((await rawUpgrade(listed.wsUrl, browser('game.example', 'https://game.example'))).status).toBe(101);
  });

  it('leaves a public name forwarded by a trusted proxy alone (the proxy routes by Host itself)', async () => {
    const srv = await startServer({ trustProxy: ['127.0.0.1'] });
    const play = { ...browser('play.example.com', 'https://play.example.com') };
    expect((await rawUpgrade(srv.wsUrl, { ...play, 'X-Forwarded-For': '203.0.113.5' })).status).toBe(101);
    // The same browser request without the proxy's header is a direct one: checked.
    expect((await rawUpgrade(srv.wsUrl, play)).status).toBe(UPGRADE_REFUSALS['bad-host']);
    // Without trustProxy the header means nothing.
    const plain = await startServer();
    expect((await rawUpgrade(plain.wsUrl, { ...play, 'X-Forwarded-For': '203.0.113.5' })).status).toBe(UPGRADE_REFUSALS['bad-host']);
  });

  it('logs a warning naming the refused Host and how to allow it, once per Host', async () => {
    const srv = await startServer();
    for (let i = 0; i < 3; i++) await rawUpgrade(srv.wsUrl, browser('play.example.com'));
    await rawUpgrade(srv.wsUrl, browser('other.example.com'));
    const warnings = srv.logs.lines.filter((l) => l.level === 40 && typeof l.host === 'string');
    expect(warnings.map((l) => l.host)).toEqual(['play.example.com', 'other.example.com']);
    expect(warnings[0]!.msg).toContain('play.example.com');
    expect(warnings[0]!.msg).toContain('--allowed-hosts');
    expect(warnings[0]!.msg).toContain('--trust-proxy');
  });

  it('logs at most 32 distinct refused Hosts', async () => {
    const srv = await startServer();
    for (let i = 0; i < 40; i++) await rawUpgrade(srv.wsUrl, browser(`h${i}.example`));
    expect(srv.logs.lines.filter((l) => l.level === 40 && typeof l.host === 'string')).toHaveLength(32);
  });

  it('leaves non-browser clients (no Origin), allowedHosts "*" and an explicit origin list alone', async () => {
    const srv = await startServer();
    expect((await rawUpgrade(srv.wsUrl, { Host: 'evil.example' })).status).toBe(101);
    const any = await startServer({ allowedHosts: '*' });
    expect((await rawUpgrade(any.wsUrl, browser('evil.example'))).status).toBe(101);
    // An explicit origin list is the protection then: the rebinding page's origin is not on it.
    const listed = await startServer({ allowedOrigins: ['https://game.example'] });
    expect((await rawUpgrade(listed.wsUrl, browser('game.example', 'https://game.example'))).status).toBe(101);
    expect((await rawUpgrade(listed.wsUrl, browser('evil.example'))).status).toBe(UPGRADE_REFUSALS['bad-origin']);
  });

  it('refuses malformed allowedHosts at construction', async () => {
    await expect(listenSignaling({ port: 0, logger: false, allowedHosts: ['http://x'] })).rejects.toThrow(InvalidOptionsError);
  });
});
