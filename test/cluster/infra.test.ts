/**
 * The cluster tests' own infrastructure, checked with real processes: Redis (standalone and
 * a 3-master Redis Cluster) and the documented nginx config in front of `rallypoint serve`.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { chromium } from 'playwright-core';
import { createClient, createCluster } from 'redis';
import { afterEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SignalingClient, type WebSocketConstructor } from '../../signaling/client/index.js';
import { SUBPROTOCOL } from '../../signaling/protocol/index.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH, chromiumMissing } from '../helpers/browser.js';
import { describeNeeding } from '../helpers/child.js';
import { killCliChildren } from '../helpers/cli.js';
import { type Node, startNode } from '../helpers/cluster.js';
import { httpGet } from '../helpers/http.js';
import { describeNginx, type NginxServer, nginxMissing, startNginx, stopAllNginx, testCert, testConfig, wsWithCa } from '../helpers/nginx.js';
import { describeRedis, startRedis, startRedisCluster, stopAllRedis } from '../helpers/redis.js';
import { cleanup, defer } from '../helpers/resources.js';

afterEach(async () => {
  await cleanup();
  await stopAllNginx();
  killCliChildren();
  await stopAllRedis();
});

describeRedis('test Redis (test/helpers/redis.ts)', () => {
  it('starts empty on a free port, answers, and restarts on the same port without its keys', async () => {
    const redis = await startRedis();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect((await redis.cli('PING')).trim()).toBe('PONG');
    expect((await redis.cli('CONFIG', 'GET', 'save')).split('\n').map((l) => l.trim())).toEqual(['save', '', '']);
    expect((await redis.cli('CONFIG', 'GET', 'appendonly')).split('\n')[1]?.trim()).toBe('no');

    const client = createClient({ url: redis.url });
    client.on('error', () => {}); // the kill below drops its connection
    await client.connect();
    await client.set('k', 'v');
    expect(await client.get('k')).toBe('v');
    client.destroy();

    const oldPid = redis.pid;
    await redis.kill('SIGKILL');
    await expect(redis.cli('PING')).rejects.toThrow();
    await redis.restart();
    expect(redis.pid).not.toBe(oldPid);
    expect((await redis.cli('PING')).trim()).toBe('PONG');
    // No persistence: the restarted server is empty.
    expect((await redis.cli('EXISTS', 'k')).trim()).toBe('0');
    expect((await redis.cli('DBSIZE')).trim()).toBe('0');

    await redis.stop();
    await redis.stop(); // idempotent
    await expect(redis.cli('PING')).rejects.toThrow();
    expect(() => process.kill(redis.pid, 0)).toThrow(); // the process is gone
  });

  it('a frozen server is stopped and answers once thawed', async () => {
    const redis = await startRedis();
    const client = createClient({ url: redis.url });
    client.on('error', () => {});
    await client.connect();
    redis.freeze();
    const pending = client.ping();
    // State T in /proc/PID/stat: stopped by a signal, its socket still open.
    expect(await procState(redis.pid)).toBe('T');
    redis.thaw();
    expect(await pending).toBe('PONG');
    client.destroy();
  });

  it('restart() on a port given to startRedis works after stop() too', async () => {
    const first = await startRedis();
    const port = first.port;
    await first.stop();
    const again = await startRedis({ port });
    expect(again.port).toBe(port);
    await again.cli('SET', 'x', '1');
    await again.stop();
    await again.restart();
    expect((await again.cli('GET', 'x')).trim()).toBe('');
  });

  it('a 3-master cluster reaches cluster_state:ok; node-redis createCluster sets keys on every shard and uses sharded pub/sub', async () => {
    const cluster = await startRedisCluster({ masters: 3 });
    expect(cluster.nodes).toHaveLength(3);
    for (const node of cluster.nodes) {
      const info = await node.cli('CLUSTER', 'INFO');
      expect(info).toMatch(/^cluster_state:ok\r?$/m);
      expect(info).toMatch(/^cluster_known_nodes:3\r?$/m);
      expect(info).toMatch(/^cluster_slots_assigned:16384\r?$/m);
    }

    const client = createCluster({ rootNodes: cluster.rootNodes });
    client.on('error', () => {});
    await client.connect();
    // Keys with different hash tags, found on different masters by their slots.
    const tags = ['room-a', 'room-b', 'room-c', 'room-d', 'room-e', 'room-f'];
    for (const tag of tags) await client.set(`{${tag}}:k`, tag);
    for (const tag of tags) expect(await client.get(`{${tag}}:k`)).toBe(tag);
    const owners = new Set<number>();
    for (const tag of tags) {
      for (const node of cluster.nodes) {
        if ((await node.cli('EXISTS', `{${tag}}:k`)).trim() === '1') owners.add(node.port);
      }
    }
    expect(owners.size).toBeGreaterThan(1);

    const sub = client.duplicate();
    sub.on('error', () => {});
    await sub.connect();
    const got: string[] = [];
    let heard: () => void = () => {};
    const gotTwo = new Promise<void>((resolve) => (heard = resolve));
    // Resolves once the shard owning the channel's slot confirmed the subscription.
    await sub.sSubscribe('{room-a}:events', (message) => {
      got.push(message);
      if (got.length === 2) heard();
    });
    expect(await client.sPublish('{room-a}:events', 'one')).toBe(1);
    expect(await client.sPublish('{room-a}:events', 'two')).toBe(1);
    await gotTwo;
    expect(got).toEqual(['one', 'two']);
    sub.destroy();
    client.destroy();
  });
});

/** The state letter of /proc/PID/stat (R, S, T, ...). */
async function procState(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

async function connections(node: Node): Promise<number> {
  const res = await httpGet(`http://127.0.0.1:${node.port}/healthz`);
  return (JSON.parse(res.body) as { connections: number }).connections;
}

function httpsGetText(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** A SignalingClient through nginx that trusts the test certificate; closed by cleanup(). */
async function joinThrough(nginx: NginxServer, room: string, ws = wsWithCa(nginx.caPem)): Promise<{ client: SignalingClient; id: string }> {
  const client = new SignalingClient({ url: nginx.wssUrl, room, WebSocket: ws, reconnect: false });
  defer(() => client.close());
  const welcome = await client.connect();
  return { client, id: welcome.id };
}

/** The access log's WebSocket lines once there are `count` of them (nginx writes each at the end of its request). */
async function untilLogged(nginx: NginxServer, count: number): Promise<string[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const lines = (await nginx.accessLog()).filter((l) => l.includes('"GET /ws'));
    if (lines.length >= count || Date.now() > deadline) return lines;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describeNginx('the documented nginx config (signaling/deploy/nginx.conf) in front of two nodes', () => {
  it('changes only the deployment-specific lines of the documented file', async () => {
    const documented = await readFile(new URL('../../signaling/deploy/nginx.conf', import.meta.url), 'utf8');
    const cert = await testCert();
    const conf = testConfig(documented, { port: 4443, upstreams: [1111, 2222, 3333], tls: true, cert, dir: '/tmp/x' });
    expect(conf).toContain('listen 127.0.0.1:4443 ssl;');
    expect(conf).toMatch(/server 127\.0\.0\.1:1111 max_fails=1 fail_timeout=5s;\n\s*server 127\.0\.0\.1:2222 max_fails=1 fail_timeout=5s;\n\s*server 127\.0\.0\.1:3333 max_fails=1/);
    expect(conf).not.toMatch(/server 127\.0\.0\.1:808[12]/);
    expect(conf).toContain(`ssl_certificate ${cert.certPath};`);
    // Every proxying directive of the documented file is there unchanged.
    for (const line of documented.split('\n').filter((l) => /^\s*(proxy_|map |zone |ssl_protocols|location)/.test(l))) expect(conf).toContain(line);
    expect(() => testConfig(documented.replace('listen 443 ssl;', 'listen 443;'), { port: 1, upstreams: [2], tls: true, cert, dir: '/tmp/x' })).toThrow(/listen 443 ssl/);
  });

  it('a Node client joins over wss:// trusting the test CA; connections alternate between nodes; /healthz answers, /metrics does not', async () => {
    const [a, b] = await Promise.all([startNode(), startNode()]);
    const nginx = await startNginx({ upstreams: [a.port, b.port] });
    expect(nginx.wssUrl).toBe(`wss://localhost:${nginx.port}/ws`);

    // Without the CA the TLS handshake fails: the certificate is really checked.
    const untrusted = new WebSocket(nginx.wssUrl, SUBPROTOCOL);
    const [err] = (await once(untrusted, 'error')) as [Error & { code?: string }];
    expect(err.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);

    const first = await joinThrough(nginx, 'lobby');
    const second = await joinThrough(nginx, 'lobby');
    expect(first.id).not.toBe(second.id);
    // Round-robin: one connection on each node.
    expect([await connections(a), await connections(b)]).toEqual([1, 1]);

    const health = await httpsGetText(`${nginx.httpsUrl}/healthz`, nginx.caPem);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok' });
    expect((await httpsGetText(`${nginx.httpsUrl}/metrics`, nginx.caPem)).status).toBe(404);
  });

  it('with --trust-proxy 1 a node sees the client address nginx appended, not a forged X-Forwarded-For', async () => {
    const node = await startNode();
    const nginx = await startNginx({ upstreams: [node.port] });
    // The client connects from 127.0.0.2 (all of 127/8 is loopback) and forges a header;
    // nginx itself reaches the node from 127.0.0.1.
    const ws = wsWithCa(nginx.caPem, { localAddress: '127.0.0.2', headers: { 'X-Forwarded-For': '198.51.100.7' } });
    const { client, id } = await joinThrough(nginx, 'xff', ws);
    await client.close();
    const closed = await node.waitLog((e) => e.event === 'close' && e.id === id);
    expect(closed.ip).toBe('127.0.0.2');
  });

  it('a killed node is skipped: new connections still succeed on the other one', async () => {
    const [a, b] = await Promise.all([startNode(), startNode()]);
    const nginx = await startNginx({ upstreams: [a.port, b.port] });
    a.child.kill('SIGKILL');
    await once(a.child, 'exit');
    // Whichever node nginx tries first, every handshake ends on b.
    const clients = [];
    for (let i = 0; i < 4; i++) clients.push((await joinThrough(nginx, 'after-kill')).client);
    expect(await connections(b)).toBe(4);
    // nginx logs a WebSocket request when it ends: close them, then read the log.
    await Promise.all(clients.map((c) => c.close()));
    const log = await untilLogged(nginx, 4);
    expect(log.every((l) => / 101 "GET \/ws/.test(l))).toBe(true);
    // The first handshake went to the dead node, was refused and was retried on b.
    expect(log.some((l) => l.includes(`127.0.0.1:${a.port}, 127.0.0.1:${b.port} 101`))).toBe(true);
  });

  it('tls: false listens in plain HTTP; mutate edits the config nginx runs', async () => {
    const node = await startNode();
    const nginx = await startNginx({
      upstreams: [node.port],
      tls: false,
      mutate: (conf) => conf.replace(/(location = \/metrics \{\s*)return 404;/, '$1return 418;'),
    });
    expect(nginx.wssUrl).toBe(`ws://localhost:${nginx.port}/ws`);
    expect(nginx.conf).toContain(`listen 127.0.0.1:${nginx.port};`);
    const { id } = await joinThrough(nginx, 'plain', WebSocket as unknown as WebSocketConstructor);
    expect(id).toMatch(/./);
    expect((await httpGet(`${nginx.httpsUrl}/metrics`)).status).toBe(418);
    expect((await httpGet(`${nginx.httpsUrl}/healthz`)).status).toBe(200);
  });
});

describeNeeding(nginxMissing() ?? chromiumMissing(), 'Chromium through the documented nginx config', () => {
  it('Chromium joins over wss:// through nginx (certificate trusted by its public key)', async () => {
    const node = await startNode();
    const nginx = await startNginx({ upstreams: [node.port] });
    const browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${nginx.spki}`],
      timeout: 15_000,
    });
    defer(() => browser.close());
    const page = await (await browser.newContext()).newPage();
    // A page of that origin, so the upgrade carries Origin: https://localhost:PORT.
    const res = await page.goto(`${nginx.httpsUrl}/healthz`);
    expect(res?.status()).toBe(200);
    const frame = await page.evaluate(
      ([url, proto]) =>
        new Promise<string>((resolve, reject) => {
          // The page's own WebSocket (not the `ws` import of this file).
          const ws = new (globalThis as unknown as { WebSocket: typeof WebSocket }).WebSocket(url!, proto);
          ws.onopen = () => ws.send(JSON.stringify({ type: 'join', room: 'browser' }));
          ws.onmessage = (ev) => {
            resolve(`${ws.protocol} ${String(ev.data)}`);
            ws.close();
          };
          ws.onerror = () => reject(new Error('websocket error'));
        }),
      [nginx.wssUrl, SUBPROTOCOL],
    );
    const [proto, json] = [frame.slice(0, frame.indexOf(' ')), frame.slice(frame.indexOf(' ') + 1)];
    expect(proto).toBe(SUBPROTOCOL);
    expect(JSON.parse(json)).toMatchObject({ type: 'welcome', room: 'browser' });
  });
});
