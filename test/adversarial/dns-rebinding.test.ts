/**
 * DNS rebinding: a page on evil.example whose name the attacker re-points at 127.0.0.1
 * reaches a local server as evil.example. Its upgrade carries Origin http://evil.example:P
 * and Host evil.example:P, which the same-origin check alone lets through. The Host must
 * now name this server.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { UPGRADE_REFUSALS } from '../../signaling/protocol/index.js';
import { InvalidOptionsError, listenSignaling } from '../../signaling/server/index.js';
import { rawUpgrade } from '../helpers/http.js';
import { cleanup } from '../helpers/resources.js';
import { metricValue, startServer } from '../helpers/server.js';

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
    const srv = await startServer({ host: 'localhost' });
    expect((await rawUpgrade(srv.wsUrl, browser(`localhost:${srv.port}`))).status).toBe(101);
    // ... without turning the Host check on where an explicit origin list protects instead.
    const listed = await startServer({ host: 'localhost', allowedOrigins: ['https://game.example'] });
    expect((await rawUpgrade(listed.wsUrl, browser('game.example', 'https://game.example'))).status).toBe(101);
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
