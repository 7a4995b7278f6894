import { request } from 'node:http';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { httpGet, rawUpgrade } from '../helpers/http.js';
import { cleanup } from '../helpers/resources.js';
import { metricValue, startFakeClockServer, startServer } from '../helpers/server.js';

afterEach(cleanup);

describe('GET /healthz', () => {
  it('answers 200 JSON with status ok and live counts', async () => {
    const srv = await startServer();
    let res = await httpGet(`${srv.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(res.body)).toEqual({ status: 'ok', connections: 0, rooms: 0, peers: 0 });

    await srv.joined('a');
    await srv.joined('a');
    await srv.joined('b');
    await srv.connect();
    res = await httpGet(`${srv.url}/healthz?probe=1`);
    expect(JSON.parse(res.body)).toEqual({ status: 'ok', connections: 4, rooms: 2, peers: 3 });
  });

  it('answers HEAD, refuses other methods with 405, and leaves other paths to onRequest (404 without one)', async () => {
    const srv = await startServer();
    const post = await new Promise<number>((resolve, reject) => {
      const req = request(`${srv.url}/healthz`, { method: 'POST', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    const head = await new Promise<{ status: number; type: string | undefined }>((resolve, reject) => {
      const req = request(`${srv.url}/healthz`, { method: 'HEAD', agent: false }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] });
      });
      req.on('error', reject);
      req.end();
    });
    expect(head).toEqual({ status: 200, type: 'application/json' });
    expect(post).toBe(405);
    expect((await httpGet(`${srv.url}/`)).status).toBe(404);

    const withApp = await startServer({ onRequest: (_req, res) => res.writeHead(200, { 'Content-Type': 'text/plain' }).end('app\n') });
    const page = await httpGet(`${withApp.url}/index.html`);
    expect(page).toMatchObject({ status: 200, body: 'app\n' });
    expect((await httpGet(`${withApp.url}/healthz`)).status).toBe(200);
  });
});

describe('GET /metrics', () => {
  it('serves Prometheus text with gauges, counters by label and the upgrade histogram', async () => {
    const srv = await startServer({ limits: { resumeGraceMs: 0 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await srv.joined('s');
    a.client.send({ type: 'signal', to: b.id, data: 1 });
    a.client.send({ type: 'signal', to: b.id, data: 2 });
    await b.client.next('signal');
    await b.client.next('signal');
    a.client.sendRaw('{oops');
    await a.client.next('error');
    await a.client.expectError({ type: 'signal', to: 'ghost', data: 0 });
    b.client.send({ type: 'leave' });
    await a.client.next('peer-left');
    await b.client.close(1000);
    await srv.logs.closeCount(1);
    await rawUpgrade(`${srv.url}/elsewhere`);

    const res = await httpGet(`${srv.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.body;
    expect(text).toMatch(/^# TYPE rallypoint_connections gauge$/m);
    expect(text).toMatch(/^# TYPE rallypoint_messages_total counter$/m);
    expect(text).toMatch(/^# TYPE rallypoint_upgrade_duration_seconds histogram$/m);
    const v = (name: string, labels: Record<string, string> = {}): number | undefined => metricValue(text, name, labels);
    expect(v('rallypoint_connections')).toBe(2);
    expect(v('rallypoint_rooms')).toBe(2);
    expect(v('rallypoint_peers')).toBe(2);
    expect(v('rallypoint_messages_total', { type: 'join' })).toBe(3);
    expect(v('rallypoint_messages_total', { type: 'signal' })).toBe(3);
    expect(v('rallypoint_messages_total', { type: 'leave' })).toBe(1);
    expect(v('rallypoint_errors_total', { code: 'bad-json' })).toBe(1);
    expect(v('rallypoint_errors_total', { code: 'peer-not-found' })).toBe(1);
    expect(v('rallypoint_closes_total', { code: '1000' })).toBe(1);
    expect(v('rallypoint_upgrade_refusals_total', { reason: 'bad-path' })).toBe(1);
    expect(v('rallypoint_upgrade_duration_seconds_count')).toBe(3);
    expect(v('rallypoint_upgrade_duration_seconds_bucket', { le: '+Inf' })).toBe(3);
    expect(v('rallypoint_upgrade_duration_seconds_sum')).toBeGreaterThan(0);
  });

  it('counts payload bytes in and out, of open and closed connections alike', async () => {
    const srv = await startServer();
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    await a.client.next('peer-joined');
    a.client.send({ type: 'signal', to: b.id, data: { sdp: 'x'.repeat(500) } });
    await b.client.next('signal');
    b.client.send({ type: 'leave' });
    await a.client.next('peer-left');
    await b.client.close(1000);
    await srv.logs.closeCount(1);

    const text = await srv.scrape();
    expect(metricValue(text, 'rallypoint_bytes_in_total')).toBe(a.client.bytesSent + b.client.bytesSent);
    expect(metricValue(text, 'rallypoint_bytes_out_total')).toBe(a.client.bytesReceived + b.client.bytesReceived);
    // Counters never go down between scrapes.
    const again = await srv.scrape();
    expect(metricValue(again, 'rallypoint_bytes_in_total')).toBe(metricValue(text, 'rallypoint_bytes_in_total'));
  });

  it('registers on a registry the host passes, and adds process metrics only when asked', async () => {
    const registry = new Registry();
    const srv = await startServer({ registry, defaultMetrics: true });
    await srv.joined('r');
    const own = await registry.metrics();
    expect(metricValue(own, 'rallypoint_connections')).toBe(1);
    expect(own).toMatch(/^rallypoint_process_/m);
    expect(await srv.scrape()).toMatch(/^rallypoint_process_/m);

    const plain = await startServer();
    expect(await plain.scrape()).not.toMatch(/^rallypoint_process_/m);
  });
});

describe('close log', () => {
  it('logs one structured line per connection close with id, room, code, durationMs and byte counts', async () => {
    const srv = await startFakeClockServer();
    const a = await srv.joined('lobby');
    const b = await srv.joined('lobby');
    const anon = await srv.connect();
    b.client.send({ type: 'signal', to: a.id, data: 'hello' });
    await a.client.next('signal');

    srv.clock.advance(1_234);
    await a.client.close(1000);
    const line = await srv.logs.closed(a.id);
    expect(line).toMatchObject({
      level: 30,
      msg: 'connection closed',
      event: 'close',
      id: a.id,
      room: 'lobby',
      code: 1000,
      durationMs: 1_234,
      bytesIn: a.client.bytesSent,
      bytesOut: a.client.bytesReceived,
      ip: '127.0.0.1',
    });
    expect(a.client.bytesSent).toBeGreaterThan(0);
    expect(a.client.bytesReceived).toBeGreaterThan(0);

    // A connection that never joined has no id or room.
    srv.clock.advance(1);
    await anon.close(4321);
    const anonLine = await srv.logs.waitFor((l) => l.msg === 'connection closed' && l.code === 4321);
    expect(anonLine).toMatchObject({ id: null, room: null, durationMs: 1_235, bytesIn: 0, bytesOut: 0 });

    await b.client.terminate();
    expect(await srv.logs.closed(b.id)).toMatchObject({ code: 1006, room: 'lobby', bytesIn: b.client.bytesSent });
    expect(srv.logs.closes()).toHaveLength(3);
  });

  it('runs without a logger (logger: false)', async () => {
    const srv = await startServer({ logger: false });
    const a = await srv.joined('r');
    await expect(srv.scrape()).resolves.toMatch(/^rallypoint_messages_total\{type="join"\} 1$/m);
    await a.client.close(1000);
    expect(srv.logs.lines).toEqual([]);
  });
});
