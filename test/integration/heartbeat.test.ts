import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers/resources.js';
import { metricValue, startFakeClockServer } from '../helpers/server.js';
import type { TestClient } from '../helpers/ws-client.js';

afterEach(cleanup);

/** Resolves when the server's next ping reaches `client`. */
function pinged(client: TestClient): Promise<unknown> {
  return once(client.ws, 'ping');
}

describe('heartbeat', () => {
  it('runs on one interval of pingIntervalMs from the injected clock', async () => {
    // The client never joins: a join deadline past the ping interval keeps it open.
    const srv = await startFakeClockServer({ limits: { pingIntervalMs: 15_000, joinTimeoutMs: 60_000 } });
    expect(srv.clock.pending()).toEqual({ timeouts: 0, intervals: 1 });
    const c = await srv.connect();
    let pings = 0;
    c.ws.on('ping', () => pings++);
    srv.clock.advance(14_999);
    await c.sync();
    expect(pings).toBe(0);
    const ping = pinged(c);
    srv.clock.advance(1);
    await ping;
    expect(pings).toBe(1);
  });

  it('keeps a client that answers pings through any number of ticks', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: 0 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    for (let i = 0; i < 5; i++) {
      const pings = Promise.all([pinged(a.client), pinged(b.client)]);
      expect(srv.clock.tickIntervals()).toBe(1);
      await pings;
      // The auto-pongs were sent before the ping event; the barrier makes sure the server read them.
      await a.client.sync();
      await b.client.sync();
    }
    expect(a.client.closeInfo).toBeNull();
    expect(b.client.closeInfo).toBeNull();
    expect(a.client.pending('peer-left')).toEqual([]);
    a.client.send({ type: 'signal', to: b.id, data: 'alive' });
    expect((await b.client.next('signal')).data).toBe('alive');
  });

  it("terminates a client that missed a pong (it sees 1006) and tells its room peer-left 'timeout'", async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: 0 } });
    const live = await srv.joined('r');
    const deadClient = await srv.connect({ autoPong: false });
    const dead = await deadClient.join('r');
    await live.client.next('peer-joined');

    const firstPings = Promise.all([pinged(live.client), pinged(deadClient)]);
    srv.clock.tickIntervals();
    await firstPings;
    await live.client.sync();
    // Answering the server's ping is what counts: the dead client's own pings do not help.
    await deadClient.sync();

    srv.clock.tickIntervals();
    expect((await deadClient.closed).code).toBe(1006);
    const left = await live.client.next('peer-left');
    expect(left).toEqual({ type: 'peer-left', id: dead.id, reason: 'timeout' });
    expect(await srv.logs.closed(dead.id)).toMatchObject({ code: 1006, room: 'r' });
    expect(live.client.closeInfo).toBeNull();
    expect(metricValue(await srv.scrape(), 'rallypoint_connections')).toBe(1);
  });

  it("keeps a timed-out peer for the resume grace period, then reports peer-left 'timeout'", async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: 5_000 } });
    const live = await srv.joined('r');
    const deadClient = await srv.connect({ autoPong: false });
    const dead = await deadClient.join('r');

    const ping = pinged(deadClient);
    srv.clock.tickIntervals();
    await ping;
    await live.client.sync();
    srv.clock.tickIntervals();
    await deadClient.closed;
    await srv.logs.closed(dead.id);

    // Within the grace period the room sees nothing.
    expect(srv.clock.pending().timeouts).toBe(1);
    await live.client.sync();
    expect(live.client.pending('peer-left')).toEqual([]);

    expect(srv.clock.runTimeouts()).toBe(1);
    expect(await live.client.next('peer-left')).toEqual({ type: 'peer-left', id: dead.id, reason: 'timeout' });
  });

  it('pingAll() runs one heartbeat round on demand', async () => {
    const srv = await startFakeClockServer({ limits: { resumeGraceMs: 0 } });
    const c = await srv.connect({ autoPong: false });
    const ping = pinged(c);
    srv.server.pingAll();
    await ping;
    srv.server.pingAll();
    expect((await c.closed).code).toBe(1006);
  });
});
