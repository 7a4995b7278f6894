/**
 * A connection that never joins a room used to be kept until it went away by itself: an
 * attacker could hold memory and per-IP slots with sockets that only answer pings. A
 * connection out of a room for joinTimeoutMs is now closed with 4008.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CLOSE_CODES, DEFAULT_LIMITS, FINAL_CLOSE_CODES } from '../../signaling/protocol/index.js';
import { cleanup } from '../helpers/resources.js';
import { metricValue, startFakeClockServer } from '../helpers/server.js';

afterEach(cleanup);

/** No heartbeat ticks while the test moves fake time. */
const NO_PING = { pingIntervalMs: 1e9 };

describe('adversarial: connections that never join', () => {
  it('closes a connection that has not joined within joinTimeoutMs (default 10 s) with 4008', async () => {
    const srv = await startFakeClockServer({ limits: NO_PING });
    const idle = await srv.connect();
    srv.clock.advance(DEFAULT_LIMITS.joinTimeoutMs - 1);
    await idle.sync();
    expect(idle.closeInfo).toBeNull();
    srv.clock.advance(1);
    expect((await idle.closed).code).toBe(CLOSE_CODES.joinTimeout);
    expect(FINAL_CLOSE_CODES.has(CLOSE_CODES.joinTimeout)).toBe(false);
    await srv.logs.closeCount(1);
    expect(metricValue(await srv.scrape(), 'rallypoint_closes_total', { code: '4008' })).toBe(1);
  });

  it('keeps a joined connection however long it stays, and starts the deadline again after leave', async () => {
    const srv = await startFakeClockServer({ limits: { ...NO_PING, joinTimeoutMs: 5_000 } });
    const member = await srv.joined('r');
    const leaver = await srv.joined('r');
    srv.clock.advance(60_000);
    await member.client.sync();
    await leaver.client.sync();
    expect(member.client.closeInfo).toBeNull();

    leaver.client.send({ type: 'leave' });
    await member.client.next('peer-left');
    srv.clock.advance(4_999);
    await leaver.client.sync();
    expect(leaver.client.closeInfo).toBeNull();
    // Joining again within the deadline stops it.
    await leaver.client.join('r');
    srv.clock.advance(60_000);
    await leaver.client.sync();
    expect(leaver.client.closeInfo).toBeNull();

    leaver.client.send({ type: 'leave' });
    await member.client.next('peer-left');
    srv.clock.advance(5_000);
    expect((await leaver.client.closed).code).toBe(CLOSE_CODES.joinTimeout);
    expect(member.client.closeInfo).toBeNull();
    // No timer outlives its connection.
    await srv.logs.closeCount(1);
    expect(srv.clock.pending().timeouts).toBe(0);
  });
});
