/**
 * /metrics was public on the signaling port: anyone could read the server's load and make
 * it spend ~3.6 ms a scrape. It can be kept behind a bearer token, or on a listener of its own.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../../signaling/server/index.js';
import { killCliChildren, nextLine, START_LINE, startCli } from '../helpers/cli.js';
import { httpGet } from '../helpers/http.js';
import { cleanup } from '../helpers/resources.js';
import { startServer } from '../helpers/server.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
});

const TOKEN = 'metrics-token-0123456789abcdef';

describe('adversarial: /metrics access', () => {
  it('answers 401 without the bearer token, and the metrics with it; /healthz stays public', async () => {
    const srv = await startServer({ metricsToken: TOKEN });
    const anonymous = await httpGet(`${srv.url}/metrics`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toContain('Bearer');
    expect(anonymous.body).not.toContain('rallypoint_');
    expect((await httpGet(`${srv.url}/metrics`, { Authorization: 'Bearer wrong-token-0123456789abcdef' })).status).toBe(401);
    const ok = await httpGet(`${srv.url}/metrics`, { Authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('rallypoint_connections');
    expect((await httpGet(`${srv.url}/healthz`)).status).toBe(200);
  });

  it('serves /metrics on metricsPort only, and 404 on the signaling port', async () => {
    const srv = await startServer({ metricsPort: 0, metricsHost: '127.0.0.1' });
    expect(srv.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(srv.metricsUrl).not.toContain(`:${srv.port}/`);
    expect((await httpGet(`${srv.url}/metrics`)).status).toBe(404);
    const scraped = await httpGet(srv.metricsUrl as string);
    expect(scraped.status).toBe(200);
    expect(scraped.body).toContain('rallypoint_connections');
    // The metrics listener serves nothing else.
    expect((await httpGet((srv.metricsUrl as string).replace('/metrics', '/healthz'))).status).toBe(404);
  });

  it('binds the metrics listener to loopback by default, whatever the signaling host', async () => {
    const srv = await startServer({ host: '0.0.0.0', metricsPort: 0 });
    expect(srv.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect((await httpGet(srv.metricsUrl as string)).status).toBe(200);
  });

  it('refuses a short token at construction', async () => {
    await expect(startServer({ metricsToken: 'short' })).rejects.toThrow(InvalidOptionsError);
  });

  it('the CLI takes --metrics-port, --metrics-host and --metrics-token', async () => {
    const child = startCli(['serve', '--port', '0', '--host', '127.0.0.1', '--turn', 'off', '--metrics-port', '0', '--metrics-host', '127.0.0.1'], {
      RALLYPOINT_METRICS_TOKEN: TOKEN,
    });
    const [, url] = START_LINE.exec(await nextLine(child)) as RegExpExecArray;
    const metricsLine = /^rallypoint metrics on (http:\/\/\S+)$/.exec(await nextLine(child));
    expect(metricsLine).not.toBeNull();
    const metricsUrl = metricsLine![1]!;
    expect((await httpGet(`${url!}/metrics`)).status).toBe(404);
    expect((await httpGet(metricsUrl)).status).toBe(401);
    const ok = await httpGet(metricsUrl, { Authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('rallypoint_process_');
  });
});
