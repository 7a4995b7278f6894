/**
 * The HTTP transports on a cluster behind a round-robin load balancer (the documented nginx
 * config, no sticky sessions): a POST or poll that lands on a node other than the one holding
 * its session is carried there through Redis. Real redis-server, real `rallypoint serve`
 * processes, real nginx.
 */
import { afterEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SignalingClient, type Transport, type WebSocketConstructor } from '../../signaling/client/client.js';
import { killCliChildren } from '../helpers/cli.js';
import { startClusterNode, until } from '../helpers/cluster.js';
import { describeNginx, startNginx, stopAllNginx } from '../helpers/nginx.js';
import { describeRedis, startRedis, stopAllRedis } from '../helpers/redis.js';
import { cleanup, defer } from '../helpers/resources.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
  await stopAllNginx();
  await stopAllRedis();
});

function client(url: string, transports: Transport[]): SignalingClient {
  const c = new SignalingClient({ url, room: 'rr', WebSocket: WebSocket as unknown as WebSocketConstructor, transports });
  defer(() => c.close());
  return c;
}

/** Collects the `i` of every signal `c` gets. */
function received(c: SignalingClient): number[] {
  const got: number[] = [];
  c.on('signal', (_from, data) => got.push((data as { i: number }).i));
  return got;
}

describeRedis('HTTP transports on a cluster', () => {
  describeNginx('behind round-robin nginx', () => {
    it.each([['sse'], ['poll']] as const)('a %s session works although its requests land on both nodes', async (kind) => {
      const redis = await startRedis();
      const nodes = await Promise.all([startClusterNode(redis.url, 'n1'), startClusterNode(redis.url, 'n2')]);
      const nginx = await startNginx({ upstreams: nodes.map((n) => n.port), tls: false });
      const http = client(nginx.wssUrl, [kind]);
      const ws = client(nginx.wssUrl, ['websocket']);
      const [hw, ww] = [await http.connect(), await ws.connect()];
      expect(http.transport).toBe(kind);
      const gotHttp = received(http);
      const gotWs = received(ws);
      for (let i = 0; i < 100; i++) {
        http.signal(ww.id, { i });
        ws.signal(hw.id, { i });
      }
      await until(() => gotHttp.length >= 100 && gotWs.length >= 100, 'every signal both ways', 20_000);
      expect(gotHttp).toEqual([...Array(100).keys()]);
      expect(gotWs).toEqual([...Array(100).keys()]);
      // Round robin did send this session's requests to both nodes (no stickiness needed).
      const sid = /sid=([A-Za-z0-9_-]+)\.(n[12])/;
      const lines = (await nginx.accessLog()).filter((l) => sid.test(l));
      const upstreams = new Set(lines.map((l) => l.split(' ')[1]));
      expect(upstreams.size).toBe(2);
      expect(lines.filter((l) => / (4|5)\d\d "/.test(l))).toEqual([]);
    });

    it.each([['sse'], ['poll']] as const)('the node holding a %s session is SIGKILLed: the client resumes through the survivor, same id, signals go on', async (kind) => {
      const redis = await startRedis();
      const nodes = await Promise.all([startClusterNode(redis.url, 'n1'), startClusterNode(redis.url, 'n2')]);
      const nginx = await startNginx({ upstreams: nodes.map((n) => n.port), tls: false });
      const http = client(nginx.wssUrl, [kind]);
      const ws = client(nginx.wssUrl, ['websocket']);
      const [hw, ww] = [await http.connect(), await ws.connect()];
      const gotWs = received(ws);
      const opens: { id: string; resumed: boolean }[] = [];
      http.on('open', (w) => opens.push({ id: w.id, resumed: w.resumed }));
      const left: string[] = [];
      ws.on('peer-left', (id) => left.push(id));
      // Which node holds the session: the one whose id ends its sid in nginx's log.
      const holder = /sid=[A-Za-z0-9_-]+\.(n[12])/.exec((await nginx.accessLog()).join('\n'))?.[1];
      const victim = nodes[holder === 'n1' ? 0 : 1];
      expect(victim).toBeDefined();
      victim?.child.kill('SIGKILL');
      await until(() => opens.length > 0, 'the HTTP client welcomed again', 20_000);
      expect(opens).toEqual([{ id: hw.id, resumed: true }]);
      expect(http.transport).toBe(kind);
      for (let i = 0; i < 20; i++) http.signal(ww.id, { i });
      await until(() => gotWs.length >= 20, 'signals after the resume', 10_000);
      expect(gotWs).toEqual([...Array(20).keys()]);
      expect(left).toEqual([]);
    });
  });
});
