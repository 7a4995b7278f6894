import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { attachSignaling, type SignalingServer, type SignalingServerOptions } from '../../signaling/server/index.js';
import { httpGet, rawUpgrade } from '../helpers/http.js';
import { LogCapture } from '../helpers/logs.js';
import { cleanup, defer } from '../helpers/resources.js';
import { TestClient } from '../helpers/ws-client.js';

afterEach(cleanup);

/** An application's own HTTP server: it answers 426 to everything, and routes /healthz to signaling if asked. */
async function appServer(): Promise<{ http: Server; base: string; setSignaling(s: SignalingServer): void }> {
  let signaling: SignalingServer | null = null;
  const http = createServer((req, res) => {
    if (signaling?.handleHttp(req, res)) return;
    res.writeHead(req.url === '/' ? 200 : 426, { 'Content-Type': 'text/plain' }).end(req.url === '/' ? 'home\n' : 'app\n');
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  defer(async () => {
    if (!http.listening) return;
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });
  const { port } = http.address() as AddressInfo;
  return { http, base: `http://127.0.0.1:${port}`, setSignaling: (s) => (signaling = s) };
}

function attach(http: Server, options: SignalingServerOptions = {}): SignalingServer {
  const signaling = attachSignaling(http, { logger: new LogCapture().logger, ...options });
  defer(() => signaling.close({ timeoutMs: 2_000 }));
  return signaling;
}

describe('attachSignaling on an existing HTTP server', () => {
  it('serves signaling on its path next to the application routes', async () => {
    const app = await appServer();
    const signaling = attach(app.http, { path: '/rtc' });
    app.setSignaling(signaling);

    const a = await TestClient.connect(`ws://127.0.0.1:${(app.http.address() as AddressInfo).port}/rtc`);
    const b = await TestClient.connect(`${app.base.replace('http', 'ws')}/rtc`);
    const wa = await a.join('room');
    await b.join('room');
    b.send({ type: 'signal', to: wa.id, data: 'via attach' });
    expect((await a.next('signal')).data).toBe('via attach');

    expect(await httpGet(`${app.base}/`)).toMatchObject({ status: 200, body: 'home\n' });
    const health = await httpGet(`${app.base}/healthz`);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok', connections: 2, rooms: 1, peers: 2 });
    // Other upgrade paths are refused by signaling (refuseOtherPaths defaults to true).
    expect((await rawUpgrade(`${app.base}/ws`)).status).toBe(404);
  });

  it("close() closes its clients with 1001 but not the application's server", async () => {
    const app = await appServer();
    const signaling = attach(app.http);
    const c = await TestClient.connect(`${app.base.replace('http', 'ws')}/ws`);
    await c.join('r');

    await signaling.close();
    expect((await c.closed).code).toBe(1001);
    expect(app.http.listening).toBe(true);
    expect(await httpGet(`${app.base}/`)).toMatchObject({ status: 200, body: 'home\n' });
    // Its upgrade listener is gone: the request now reaches the application like any other.
    expect(app.http.listenerCount('upgrade')).toBe(0);
    const after = await rawUpgrade(`${app.base}/ws`);
    expect(after.status).toBe(426);
  });

  it('with refuseOtherPaths: false leaves other paths to other upgrade listeners', async () => {
    const app = await appServer();
    attach(app.http, { refuseOtherPaths: false });
    const other = new WebSocketServer({ noServer: true });
    defer(() => new Promise<void>((resolve) => other.close(() => resolve())));
    app.http.on('upgrade', (req, socket, head) => {
      if (req.url !== '/chat') return;
      other.handleUpgrade(req, socket, head, (ws) => {
        ws.send('chat server here');
        ws.close(1000);
      });
    });

    const chat = await TestClient.connect(`${app.base.replace('http', 'ws')}/chat`, { protocols: [], allowInvalidFrames: true });
    // The other server's frame is not rallypoint.v1; the client records it as invalid, which is the point.
    expect((await chat.closed).code).toBe(1000);
    expect(chat.invalid).toEqual(['chat server here']);

    const signaling = await TestClient.connect(`${app.base.replace('http', 'ws')}/ws`);
    expect((await signaling.join('r')).room).toBe('r');
  });

  it('lets two signaling services share one server on different paths', async () => {
    const app = await appServer();
    attach(app.http, { path: '/one', refuseOtherPaths: false });
    attach(app.http, { path: '/two', refuseOtherPaths: false });
    const ws = app.base.replace('http', 'ws');
    const one = await TestClient.connect(`${ws}/one`);
    const two = await TestClient.connect(`${ws}/two`);
    const w1 = await one.join('same-name');
    const w2 = await two.join('same-name');
    // Separate services, separate rooms.
    expect(w1.peers).toEqual([]);
    expect(w2.peers).toEqual([]);
    expect((await two.expectError({ type: 'signal', to: w1.id, data: 1 })).code).toBe('peer-not-found');
  });
});
