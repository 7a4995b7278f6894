/**
 * The signaling protocol over HTTP (Server-Sent Events and long-polling down, POST up):
 * the same frames, checks and limits as the WebSocket, numbered frames acknowledged by the
 * client so that a dropped poll or stream loses nothing, and bounds on what a stranger or a
 * vanished client can make the server hold. Real server, real HTTP requests by hand.
 */
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../signaling/protocol/index.js';
import { RawSession, send } from '../helpers/http-session.js';
import { cleanup, defer } from '../helpers/resources.js';
import { metricValue, startFakeClockServer, startServer } from '../helpers/server.js';

afterEach(cleanup);

const frame = (data: string): ServerMessage => JSON.parse(data) as ServerMessage;
const join = (room: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ type: 'join', room, ...extra });

describe('HTTP transports', () => {
  it('SSE: an event stream with proxy-proof headers, the open event first, then numbered frames', async () => {
    const srv = await startServer();
    const base = `${srv.url}/ws`;
    const { session, stream, headers } = await RawSession.sse(base);
    expect(headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(headers['cache-control']).toBe('no-cache, no-store, no-transform');
    expect(headers['x-accel-buffering']).toBe('no');
    expect(stream.events[0]?.type).toBe('open');
    expect(JSON.parse(stream.events[0]?.data ?? '')).toMatchObject({ sid: session.sid, maxPostBytes: 262144, pollHoldMs: 20000 });
    expect(session.sid).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect((await session.post([join('r'), { type: 'ping', ref: 'p' }])).status).toBe(204);
    const [welcome, pong] = await stream.until((e) => (e.length >= 3 ? e.slice(1, 3) : undefined), 'welcome and pong');
    expect([welcome?.id, pong?.id]).toEqual([1, 2]);
    expect(frame(welcome?.data ?? '').type).toBe('welcome');
    expect(frame(pong?.data ?? '')).toEqual({ type: 'pong', ref: 'p' });
  });

  it('a long-poll session and a WebSocket peer signal each other in order, none lost or doubled', async () => {
    const srv = await startServer();
    const base = `${srv.url}/ws`;
    const poll = await RawSession.poll(base);
    await poll.post([join('r')]);
    const [welcome] = await poll.pollFrames(0, 1);
    const pollId = (frame(welcome?.data ?? '') as { id: string }).id;
    const ws = await srv.joined('r');
    for (let i = 0; i < 50; i++) ws.client.send({ type: 'signal', to: pollId, data: { i } });
    const batch: unknown[] = [];
    for (let i = 0; i < 50; i++) batch.push({ type: 'signal', to: ws.id, data: { i } });
    await poll.post(batch, { ack: 1 });
    const events = await poll.pollFrames(1, 51); // peer-joined, then the 50 signals
    const signals = events.map((e) => frame(e.data)).filter((m) => m.type === 'signal');
    expect(signals.map((m) => (m as { data: { i: number } }).data.i)).toEqual([...Array(50).keys()]);
    expect(events.map((e) => e.id)).toEqual([...Array(events.length).keys()].map((i) => i + 2));
    const got: number[] = [];
    while (got.length < 50) {
      const m = await ws.client.next('signal');
      got.push((m.data as { i: number }).i);
    }
    expect(got).toEqual([...Array(50).keys()]);
  });

  it('a dropped poll loses nothing: frames not acknowledged come again, acknowledged ones never', async () => {
    const srv = await startServer();
    const poll = await RawSession.poll(`${srv.url}/ws`);
    await poll.post([join('r'), { type: 'ping', ref: 'a' }, { type: 'ping', ref: 'b' }]);
    const first = await poll.pollFrames(0, 3);
    expect(first.map((e) => e.id)).toEqual([1, 2, 3]);
    // The answer was "lost": the client polls again with its old ack and gets the same frames.
    const again = await poll.pollFrames(0, 3);
    expect(again.map((e) => [e.id, e.data])).toEqual(first.map((e) => [e.id, e.data]));
    // Acknowledged: gone for good. An ack beyond what was sent is refused.
    await poll.post([{ type: 'ping', ref: 'c' }], { ack: 3 });
    const next = await poll.pollFrames(3, 1);
    expect(next.map((e) => [e.id, frame(e.data)])).toEqual([[4, { type: 'pong', ref: 'c' }]]);
    expect((await poll.pollOnce(2)).status).toBe(200); // 2 < 3: already forgotten, nothing to resend
    expect((await poll.pollOnce(99)).status).toBe(400);
  });

  it('a dropped SSE stream is picked up after the last acknowledged frame', async () => {
    const srv = await startServer();
    const base = `${srv.url}/ws`;
    const { session, stream } = await RawSession.sse(base);
    await session.post([join('r'), { type: 'ping', ref: '1' }, { type: 'ping', ref: '2' }]);
    await stream.until((e) => e.length >= 4 || undefined, 'three frames');
    stream.close();
    // Frame 3 was received but not acknowledged (ack 2): the new stream starts with it.
    await session.post([{ type: 'ping', ref: '3' }], { ack: 2 });
    const { status, stream: again } = await session.reattach(2);
    expect(status).toBe(200);
    const events = await again.until((e) => (e.length >= 2 ? e : undefined), 'frames 3 and 4');
    expect(events.map((e) => [e.id, frame(e.data)])).toEqual([
      [3, { type: 'pong', ref: '2' }],
      [4, { type: 'pong', ref: '3' }],
    ]);
  });

  it('a POST retried with the same batch number is handled once', async () => {
    const srv = await startServer();
    const poll = await RawSession.poll(`${srv.url}/ws`);
    const ws = await srv.joined('r');
    await poll.post([join('r')]);
    await ws.client.next('peer-joined');
    expect((await poll.post([{ type: 'signal', to: ws.id, data: 'once' }], { n: 2 })).status).toBe(204);
    expect((await poll.post([{ type: 'signal', to: ws.id, data: 'once' }], { n: 2 })).status).toBe(204);
    await poll.post([{ type: 'signal', to: ws.id, data: 'after' }], { n: 3 });
    expect((await ws.client.next('signal')).data).toBe('once');
    expect((await ws.client.next('signal')).data).toBe('after');
  });

  it('refuses what is not a session request, with a status and the X-Rallypoint-Refusal header', async () => {
    const srv = await startServer({ limits: { maxPostBytes: 1024 } });
    const base = `${srv.url}/ws`;
    const poll = await RawSession.poll(base);
    const cases: [Promise<{ status: number; headers: Record<string, unknown> }>, number, string][] = [
      [send(base), 426, 'bad-request'], // a WebSocket upgrade whose headers a proxy stripped
      [send(`${base}?t=sse`), 400, 'bad-subprotocol'], // no v=rallypoint.v1
      [send(`${base}?t=send&sid=${poll.sid}&n=1`), 405, 'bad-request'], // GET for send
      [send(`${base}?t=poll&sid=nope&ack=0`), 404, 'unknown-session'],
      [send(`${base}?t=send&sid=nope&n=1`, { method: 'POST', body: 'x' }), 404, 'unknown-session'],
      [poll.post([], { body: 'x'.repeat(1025) }), 413, 'too-large'],
      [send(`${base}?t=send&sid=${poll.sid}&n=x`, { method: 'POST' }), 400, 'bad-request'],
      [send(`${base}?t=send&sid=${poll.sid}&n=9&close=1001`, { method: 'POST' }), 400, 'bad-request'],
    ];
    for (const [answer, status, reason] of cases) {
      const a = await answer;
      expect([a.status, a.headers['x-rallypoint-refusal']]).toEqual([status, reason]);
    }
    // The session is unharmed by the refused requests.
    await poll.post([join('r')]);
    expect(frame((await poll.pollFrames(0, 1))[0]?.data ?? '').type).toBe('welcome');
  });

  it('reads at most two POSTs of one session at once (a third gets 429 busy), and a newer poll ends an older one', async () => {
    const srv = await startServer();
    const poll = await RawSession.poll(`${srv.url}/ws`);
    // Two POSTs whose bodies never finish arriving.
    const slow = [1, 2].map((n) => {
      const req = request(`${srv.url}/ws?t=send&sid=${poll.sid}&n=${n}`, { method: 'POST', agent: false, headers: { 'Content-Length': '100' } });
      req.on('error', () => undefined);
      req.write('{"type":');
      defer(() => req.destroy());
      return req;
    });
    // Nothing says when the server has started reading them: empty POSTs (harmless) until refused.
    let refused: Awaited<ReturnType<typeof poll.post>> | null = null;
    for (let n = 3; refused === null && n < 1000; n++) {
      const a = await poll.post([], { n });
      if (a.status === 429) refused = a;
    }
    expect(refused?.headers['x-rallypoint-refusal']).toBe('busy');
    for (const req of slow) req.destroy();
    // Once they are gone, POSTs are read again.
    let status = 0;
    for (let n = 1000; status !== 204 && n < 2000; n++) status = (await poll.post([join('r')], { n })).status;
    expect(status).toBe(204);
    expect(frame((await poll.pollFrames(0, 1))[0]?.data ?? '').type).toBe('welcome');
    // Two polls at once: whichever the server got first is ended with `replaced`, the other
    // gets the frame.
    // gets the frame. Nothing is pending, so the first answer can only be that `replaced`.
    const polls = [poll.pollOnce(1), poll.pollOnce(1)].map((p, i) => p.then((a) => ({ i, events: a.events })));
    const first = await Promise.race(polls);
    expect(first.events.map((e) => e.type)).toEqual(['replaced']);
    await poll.post([{ type: 'ping', ref: 'x' }], { n: 5000 });
    const other = await (polls[1 - first.i] as (typeof polls)[number]);
    expect(other.events.map((e) => frame(e.data))).toEqual([{ type: 'pong', ref: 'x' }]);
  });

  it('applies the upgrade-time checks: Origin, token, per-IP slots (a session is a connection)', async () => {
    const srv = await startServer({ allowedOrigins: ['https://game.example'], limits: { maxConnectionsPerIp: 2 } });
    const base = `${srv.url}/ws?t=poll&v=rallypoint.v1`;
    expect((await send(base, { headers: { Origin: 'https://evil.example' } })).status).toBe(403);
    const ok = await send(base, { headers: { Origin: 'https://game.example' } });
    expect(ok.status).toBe(200);
    expect(ok.headers['access-control-allow-origin']).toBe('https://game.example');
    const preflight = await send(base, { method: 'OPTIONS', headers: { Origin: 'https://game.example' } });
    expect([preflight.status, preflight.headers['access-control-allow-methods']]).toEqual([204, 'GET, POST']);
    expect((await send(base)).status).toBe(200);
    const third = await send(base);
    expect([third.status, third.headers['x-rallypoint-refusal']]).toEqual([429, 'ip-full']);
    const secret = await startServer({ secret: 's3cret-s3cret-s3cret-s3cret-s3cret' });
    expect((await send(`${secret.url}/ws?t=sse&v=rallypoint.v1`)).status).toBe(401);
  });

  it('errors and rate limits come back on the downstream, as on a WebSocket', async () => {
    const srv = await startServer({ limits: { messagesPerSecond: 1, messageBurst: 3 } });
    const poll = await RawSession.poll(`${srv.url}/ws`);
    await poll.post(['{not json', join('r'), { type: 'ping' }, { type: 'ping' }]);
    const events = await poll.pollFrames(0, 4);
    // As on a WebSocket: the bucket is checked as each frame arrives; what follows the (async)
    // join waits for it, so the refused last ping is told before the welcome.
    expect(events.map((e) => frame(e.data)).map((m) => (m.type === 'error' ? m.code : m.type))).toEqual(['bad-json', 'rate-limited', 'welcome', 'pong']);
  });

  it('a client that vanished is reaped by the heartbeat and its peer leaves after the grace', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: 0 } });
    const poll = await RawSession.poll(`${srv.url}/ws`);
    await poll.post([join('r')]);
    await poll.pollFrames(0, 1);
    const ws = await srv.joined('r');
    expect(srv.server.connectionCount).toBe(2);
    expect(metricValue(await srv.scrape(), 'rallypoint_http_sessions')).toBe(1);
    // One ping is answered for it (it was just here); the next finds no sign of life since,
    // and the one after terminates it, as a WebSocket that missed its pong.
    for (let i = 0; i < 3; i++) {
      srv.clock.tickIntervals();
      await ws.client.sync();
    }
    const left = await ws.client.next('peer-left');
    expect(left.reason).toBe('timeout');
    expect(srv.server.connectionCount).toBe(1);
    expect(metricValue(await srv.scrape(), 'rallypoint_http_sessions')).toBe(0);
    expect((await poll.pollOnce(1)).status).toBe(404);
  });

  it('a reader that never acknowledges is cast off like a slow WebSocket reader (1013), its session kept', async () => {
    const srv = await startServer({ limits: { maxBufferedBytes: 160 * 1024, relayMaxBufferedBytes: 32 * 1024, relayLatestAboveBytes: 16 * 1024, resumeQueueLength: 4 } });
    const { session, stream } = await RawSession.sse(`${srv.url}/ws`);
    await session.post([join('r')]);
    const sender = await srv.joined('r');
    const big = 'x'.repeat(8000);
    for (let i = 0; i < 30; i++) sender.client.send({ type: 'signal', to: (frame(stream.events[1]?.data ?? '{}') as { id: string }).id, data: big });
    const close = await stream.until((e) => e.find((x) => x.type === 'close'), 'the close event');
    expect(close.data).toBe('1013 slow reader');
    expect(srv.server.connectionCount).toBe(1);
  });

  it('a client moving to another transport after a final ack resumes with what it had not received, once', async () => {
    const srv = await startServer();
    const { session, stream } = await RawSession.sse(`${srv.url}/ws`);
    await session.post([join('r')]);
    const welcome = frame((await stream.until((e) => e[1], 'welcome')).data) as { id: string; resume: { token: string } };
    const ws = await srv.joined('r');
    await stream.until((e) => e[2], 'peer-joined');
    for (let i = 0; i < 10; i++) ws.client.send({ type: 'signal', to: welcome.id, data: i });
    await stream.until((e) => e.length >= 13 || undefined, 'ten signals');
    // Received up to seq 7 (signals 0-4), then leaves with code 4011 ("moving").
    stream.close();
    expect((await session.post([], { ack: 7, close: 4011 })).status).toBe(204);
    // Resumes on a WebSocket with the session's token: the rest comes first, then new frames.
    const back = await srv.connect();
    const again = await back.join('r', { resume: welcome.resume.token });
    expect([again.id, again.resumed]).toEqual([welcome.id, true]);
    for (let i = 10; i < 12; i++) ws.client.send({ type: 'signal', to: welcome.id, data: i });
    const got: unknown[] = [];
    while (got.length < 7) got.push((await back.next('signal')).data);
    expect(got).toEqual([5, 6, 7, 8, 9, 10, 11]);
  });
});
