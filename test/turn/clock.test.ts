/**
 * The TURN server on a fake clock (turn/clock.ts): allocation lifetimes, nonce expiry and
 * the request buckets move with the clock the server was given, so hour-long timers are
 * checked over real UDP sockets without waiting for them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StunAttr, StunClass, StunMethod } from '../../turn/codec.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { cleanup } from '../helpers/resources.js';
import { errorCode, TurnTestClient } from '../helpers/turn-client.js';
import { startTurnServer } from '../helpers/turn-server.js';

afterEach(async () => {
  await cleanup();
});

const USERS: Record<string, string> = { alice: 'secret-a' };

describe('TURN server on a fake clock', () => {
  it('deletes an allocation when its lifetime ends, and a Refresh moves the end (RFC 8656 section 7)', async () => {
    const clock = new FakeClock();
    const { server, address } = await startTurnServer(USERS, { clock });
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    expect((await c.allocate(600)).lifetime).toBe(600);
    expect(clock.pending().timeouts).toBe(1);
    clock.advance(599_000);
    expect(server.allocationCount).toBe(1);
    expect((await c.refresh(1200)).msg.cls).toBe(StunClass.success);
    clock.advance(1_199_000);
    expect(server.allocationCount).toBe(1);
    clock.advance(1_000);
    expect(server.allocationCount).toBe(0);
    expect(clock.pending().timeouts).toBe(0);
    expect(errorCode((await c.refresh()).msg)).toBe(437);
  });

  it('a nonce expires after an hour: 438 Stale Nonce with a fresh one, which the client then uses', async () => {
    const clock = new FakeClock();
    const { address } = await startTurnServer(USERS, { clock, maxLifetime: 7200 });
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    await c.allocate(7200);
    const first = c.nonce;
    clock.advance(3_599_000);
    expect((await c.refresh()).msg.cls).toBe(StunClass.success);
    expect(c.nonce).toBe(first);
    clock.advance(2_000);
    // the same request, signed with the old nonce, is refused first
    const stale = await c.transact((tid) => c.signed(StunMethod.refresh, [], tid));
    expect(errorCode(stale.msg)).toBe(438);
    const fresh = stale.msg.attributes.find((a) => a.type === StunAttr.nonce)?.value.toString();
    expect(fresh).toMatch(/^[0-9a-f]{58}$/);
    expect(fresh).not.toBe(first);
    expect(c.learn(stale.msg)).toBe(true);
    expect((await c.refresh()).msg.cls).toBe(StunClass.success);
    expect(c.nonce).toBe(fresh);
  });
});
