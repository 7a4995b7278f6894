/**
 * The SignalingClient's own timeouts against an unlucky network and a server that stalls:
 * a half-open connection (a TCP proxy in the middle stops forwarding without closing
 * anything, as when the server's host vanishes or a middlebox drops the flow), a server
 * that upgrades and never sends `welcome`, and an idle room that must keep its connection.
 * Real server, real sockets on port 0; option values small so the test is quick.
 */
import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { createNodeSignalingClient, joinRoom } from '../../peer/node.js';
import type { ReconnectPolicy, SignalingClient, SignalingClientOptions, SignalingError, Welcome } from '../../signaling/client/index.js';
import { cleanup, deferred } from '../helpers/resources.js';
import { rawSocket, recordingWebSocket, startServer, tracked } from '../helpers/server.js';
import { type FreezableProxy, startFreezableProxy } from '../helpers/tcp-proxy.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  // Proxies and stub servers first: a frozen flow would hold the server's close for its timeout.
  await Promise.all(closers.splice(0).map((c) => c()));
  await cleanup();
});

/** Retries after 20 ms, forever. */
const quick: ReconnectPolicy = { nextDelayMs: () => 20 };

function client(opts: Partial<SignalingClientOptions> & { url: string }): SignalingClient {
  const c = createNodeSignalingClient({ room: 'lobby', reconnect: quick, ...opts });
  tracked(c);
  return c;
}

/** A proxy closed after the test. */
async function startProxy(target: number): Promise<FreezableProxy> {
  const proxy = await startFreezableProxy(target);
  closers.push(() => proxy.close());
  return proxy;
}

describe('SignalingClient liveness (adversarial network)', () => {
  it('notices a half-open connection within pingAfterMs + pingTimeoutMs and resumes its session through a fresh path', async () => {
    const server = await startServer();
    const proxy = await startProxy(server.port);
    const pingAfterMs = 300;
    const pingTimeoutMs = 300;
    const a = client({ url: `ws://127.0.0.1:${proxy.port}/ws`, pingAfterMs, pingTimeoutMs });
    const first = await a.connect();
    // A second peer, connected directly: it must not see `a` leave (the session is resumed in time).
    const b = client({ url: server.wsUrl });
    await b.connect();
    const left: string[] = [];
    b.on('peer-left', (id) => left.push(id));
    const errors: SignalingError[] = [];
    a.on('error', (e) => errors.push(e));
    const reconnecting = a.next('reconnecting');
    const reopened = a.next('open');

    proxy.freeze();
    const frozenAt = Date.now();
    const [info] = await reconnecting;
    const noticedMs = Date.now() - frozenAt;
    const [welcome] = (await reopened) as [Welcome];

    expect(info.closeCode).toBe(4408);
    expect(errors.map((e) => e.code)).toEqual(['timeout']);
    expect(errors[0]?.message).toMatch(/no answer to ping/);
    // Documented bound: pingAfterMs + pingTimeoutMs after the last frame; generous slack for a busy machine.
    expect(noticedMs).toBeLessThan(pingAfterMs + pingTimeoutMs + 2_000);
    expect(proxy.flows).toBe(2);
    expect(welcome.resumed).toBe(true);
    expect(welcome.id).toBe(first.id);
    // The resumed session carries signals again, both ways.
    const got = b.next('signal');
    a.signal(b.id as string, { after: 'resume' });
    expect(await got).toEqual([first.id, { after: 'resume' }]);
    expect(left).toEqual([]);
  });

  it('gives up an attempt whose server upgrades and never sends welcome, and retries (timeout error, close 4408)', async () => {
    // A server that completes the WebSocket upgrade and then says nothing at all.
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'rallypoint.v1' });
    await once(wss, 'listening');
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          for (const ws of wss.clients) ws.terminate();
          wss.close(() => resolve());
        }),
    );
    const closeCodes: number[] = [];
    const threeClosed = deferred();
    const joins: string[] = [];
    wss.on('connection', (ws) => {
      ws.on('message', (data) => joins.push(String(data)));
      ws.on('close', (code) => {
        if (closeCodes.push(code) === 3) threeClosed.resolve();
      });
    });
    // WebSocket only: this is the welcome timeout; the ladder would move on to SSE instead.
    const c = client({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/ws`, welcomeTimeoutMs: 200, transports: ['websocket'] });
    const errors: SignalingError[] = [];
    const reconnects: number[] = [];
    c.on('error', (e) => errors.push(e));
    c.on('reconnecting', (i) => reconnects.push(i.closeCode));
    const pending = c.connect();
    pending.catch(() => {});
    // Three attempts given up, one after the other.
    while (reconnects.length < 3) await c.next('reconnecting');
    expect(reconnects.slice(0, 3)).toEqual([4408, 4408, 4408]);
    expect(errors.slice(0, 3).map((e) => [e.code, e.message])).toEqual(Array(3).fill(['timeout', 'no welcome within 200 ms']));
    expect(joins.length).toBeGreaterThanOrEqual(3);
    expect(c.state).toBe('reconnecting');
    // The server saw each abandoned attempt closed with 4408 (resumable, not the final 1000).
    await threeClosed.promise;
    expect(closeCodes.slice(0, 3)).toEqual([4408, 4408, 4408]);
  });

  it('joinRoom takes the client timeouts: without reconnect, a server that never welcomes fails the join', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'rallypoint.v1' });
    await once(wss, 'listening');
    closers.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/ws`;
    await expect(joinRoom({ url, room: 'lobby', welcomeTimeoutMs: 150, reconnect: false })).rejects.toMatchObject({ code: 'closed', message: /4408 no welcome within 150 ms/ });
  });

  it('the welcome timeout covers an upgrade that is never answered (the socket is still connecting)', async () => {
    // Accepts TCP, reads the HTTP upgrade request, answers nothing.
    const sockets: Socket[] = [];
    const silent = createServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    closers.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const c = client({ url: `ws://127.0.0.1:${(silent.address() as AddressInfo).port}/ws`, welcomeTimeoutMs: 200 });
    const errors: SignalingError[] = [];
    c.on('error', (e) => errors.push(e));
    c.connect().catch(() => {});
    const [first] = await c.next('reconnecting');
    const [second] = await c.next('reconnecting');
    expect([first.closeCode, second.closeCode]).toEqual([4408, 4408]);
    expect(errors.slice(0, 2).map((e) => e.code)).toEqual(['timeout', 'timeout']);
    expect(sockets.length).toBeGreaterThanOrEqual(2);
  });

  it('an idle joined client pings through many intervals and keeps its connection (no reconnect)', async () => {
    const server = await startServer();
    const { WS, instances, sent } = recordingWebSocket();
    const c = client({ url: server.wsUrl, WebSocket: WS, pingAfterMs: 100, pingTimeoutMs: 100 });
    const events: string[] = [];
    for (const e of ['error', 'reconnecting', 'close'] as const) c.on(e, () => events.push(e));
    await c.connect();
    // Nothing is sent in the room: wait for the tenth pong (ten idle intervals, each answered).
    const ws = instances[0] as WebSocket;
    let pongs = 0;
    await new Promise<void>((resolve) => ws.on('message', (d) => void (String(d).includes('"type":"pong"') && ++pongs === 10 && resolve())));
    expect(sent.filter((s) => s.includes('"type":"ping"')).length).toBeGreaterThanOrEqual(10);
    expect(events).toEqual([]);
    expect(instances).toHaveLength(1);
    expect(c.state).toBe('open');
  });

  it('ping is a frame like any other for the rate limit: a flood is refused and closed with 4029', async () => {
    const server = await startServer({ limits: { messagesPerSecond: 5, messageBurst: 10, abuseThreshold: 5 } });
    const ws = await rawSocket(server.wsUrl);
    const frames: { type: string; code?: string; ref?: string }[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(String(d)) as { type: string }));
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    ws.send('{"type":"ping","ref":"r1"}');
    for (let i = 0; i < 40; i++) ws.send('{"type":"ping"}');
    expect(await closed).toBe(4029);
    // Answered before joining, ref echoed; at most the burst (plus a refill) answered.
    expect(frames[0]).toEqual({ type: 'pong', ref: 'r1' });
    const pongs = frames.filter((f) => f.type === 'pong').length;
    expect(pongs).toBeGreaterThanOrEqual(10);
    expect(pongs).toBeLessThan(15);
    expect(frames.some((f) => f.type === 'error' && f.code === 'rate-limited')).toBe(true);
  });
});
