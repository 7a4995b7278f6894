/**
 * TURN quotas over real UDP sockets on loopback: allocations per user and in total (486,
 * RFC 8656 section 7.2), the unauthenticated request rate limit (silent drops), bounded state.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { encode, StunAttr, StunClass, StunMethod } from '../../turn/codec.js';
import { TurnError, TurnServer, type TurnServerOptions } from '../../turn/index.js';
import { Nonces } from '../../turn/nonces.js';
import { AllocationQuota, DEFAULT_TURN_QUOTAS, resolveQuotas } from '../../turn/quotas.js';
import { TokenBucket, UnauthenticatedLimiter } from '../../turn/rate-limits.js';
import { sourceKey } from '../../turn/source-key.js';
import { cleanup } from '../helpers/resources.js';
import { getAttr } from '../helpers/stun-codec.js';
import { errorCode, TurnTestClient, udpPeer } from '../helpers/turn-client.js';
import { startTurnServer } from '../helpers/turn-server.js';

afterEach(async () => {
  await cleanup();
});

const USERS: Record<string, string> = { alice: 'secret-a', bob: 'secret-b', carol: 'secret-c' };

const startServer = (extra: Partial<TurnServerOptions> = {}): ReturnType<typeof startTurnServer> => startTurnServer(USERS, extra);

const ALLOCATE_ATTRS = [{ type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) }];

async function allocateCode(c: TurnTestClient): Promise<number | undefined> {
  const res = await c.request(StunMethod.allocate, ALLOCATE_ATTRS);
  return res.msg.cls === StunClass.success ? 200 : errorCode(res.msg);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('TURN quotas: configuration', () => {
  it('documents defaults and fills them in', () => {
    expect(resolveQuotas(undefined)).toEqual(DEFAULT_TURN_QUOTAS);
    expect(resolveQuotas({ maxAllocationsPerUser: 2 })).toEqual({ ...DEFAULT_TURN_QUOTAS, maxAllocationsPerUser: 2 });
    const server = new TurnServer({ credentials: () => undefined, quotas: { maxAllocations: 7 } });
    expect(server.quotas.maxAllocations).toBe(7);
    expect(server.quotas.maxAllocationsPerUser).toBe(DEFAULT_TURN_QUOTAS.maxAllocationsPerUser);
  });

  it.each([
    { maxAllocations: 0 },
    { maxAllocationsPerUser: -1 },
    { maxAllocations: 1.5 },
    { unauthenticatedBurst: Number.NaN },
    { unauthenticatedPerSecond: Number.POSITIVE_INFINITY },
    { unauthenticatedGlobalPerSecond: '10' },
    { maxTrackedSources: 0 },
    { ipv6PrefixLength: 0 },
    { ipv6PrefixLength: 129 },
    { credentialRequestBurst: 0 },
    { maxAllocatoins: 3 },
  ])('rejects %o with bad-quota', (quotas) => {
    const make = (): TurnServer => new TurnServer({ credentials: () => undefined, quotas: quotas as TurnServerOptions['quotas'] });
    expect(make).toThrow(TurnError);
    expect(make).toThrow(expect.objectContaining({ code: 'bad-quota' }));
  });

  it('accepts fractional rates', () => {
    expect(resolveQuotas({ unauthenticatedPerSecond: 0.5 }).unauthenticatedPerSecond).toBe(0.5);
  });
});

describe('TURN quotas: allocations', () => {
  it('refuses an Allocate beyond the per-user quota with 486, and other users still allocate', async () => {
    const { server, address } = await startServer({ quotas: { maxAllocationsPerUser: 2 } });
    const a = await Promise.all([0, 1, 2].map(() => TurnTestClient.open(address, 'alice', 'secret-a')));
    expect(await allocateCode(a[0]!)).toBe(200);
    expect(await allocateCode(a[1]!)).toBe(200);
    const refused = await a[2]!.request(StunMethod.allocate, ALLOCATE_ATTRS);
    expect(errorCode(refused.msg)).toBe(486);
    expect(getAttr(refused.msg, StunAttr.errorCode)!.subarray(4).toString()).toBe('Allocation Quota Reached');
    expect(server.allocationCount).toBe(2);
    const b = await TurnTestClient.open(address, 'bob', 'secret-b');
    expect(await allocateCode(b)).toBe(200);
    expect(server.allocationCount).toBe(3);
  });

  it('refuses an Allocate beyond the total quota with 486, whoever asks', async () => {
    const { server, address } = await startServer({ quotas: { maxAllocations: 2 } });
    const a = await TurnTestClient.open(address, 'alice', 'secret-a');
    const b = await TurnTestClient.open(address, 'bob', 'secret-b');
    const c = await TurnTestClient.open(address, 'carol', 'secret-c');
    expect(await allocateCode(a)).toBe(200);
    expect(await allocateCode(b)).toBe(200);
    expect(await allocateCode(c)).toBe(486);
    expect(server.allocationCount).toBe(2);
  });

  it('a refused allocation frees nothing: the existing ones keep relaying', async () => {
    const { server, address } = await startServer({ quotas: { maxAllocationsPerUser: 1 } });
    const a = await TurnTestClient.open(address, 'alice', 'secret-a');
    const { relayed } = await a.allocate();
    const peer = await udpPeer();
    expect((await a.createPermission(peer.address)).msg.cls).toBe(StunClass.success);
    // refused twice, from two other 5-tuples
    for (let i = 0; i < 2; i++) {
      const again = await TurnTestClient.open(address, 'alice', 'secret-a');
      expect(await allocateCode(again)).toBe(486);
    }
    expect(server.allocationCount).toBe(1);
    a.sendIndication(peer.address, Buffer.from('still here'));
    const got = await peer.next();
    expect(got.data.toString()).toBe('still here');
    expect(got.from.port).toBe(relayed.port);
    // and the refused ones did not give back a slot they never had
    const third = await TurnTestClient.open(address, 'alice', 'secret-a');
    expect(await allocateCode(third)).toBe(486);
  });

  it('deleting an allocation (Refresh with LIFETIME 0) frees its quota slot', async () => {
    const { server, address } = await startServer({ quotas: { maxAllocationsPerUser: 1, maxAllocations: 1 } });
    const a = await TurnTestClient.open(address, 'alice', 'secret-a');
    await a.allocate();
    const a2 = await TurnTestClient.open(address, 'alice', 'secret-a');
    expect(await allocateCode(a2)).toBe(486);
    expect((await a.refresh(0)).msg.cls).toBe(StunClass.success);
    expect(server.allocationCount).toBe(0);
    expect(await allocateCode(a2)).toBe(200);
    // the total slot was freed too, and is taken again
    const b = await TurnTestClient.open(address, 'bob', 'secret-b');
    expect(await allocateCode(b)).toBe(486);
  });

  it('an Allocate that fails to bind a relay port (508) gives its quota slot back', async () => {
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((r) => blocker.bind(0, '127.0.0.1', () => r()));
    const port = blocker.address().port;
    const { server, address } = await startServer({ minPort: port, maxPort: port, quotas: { maxAllocations: 1 } });
    const a = await TurnTestClient.open(address, 'alice', 'secret-a');
    expect(await allocateCode(a)).toBe(508);
    await new Promise<void>((r) => blocker.close(() => r()));
    const b = await TurnTestClient.open(address, 'bob', 'secret-b');
    expect(await allocateCode(b)).toBe(200);
    expect(server.allocationCount).toBe(1);
  });

  it('AllocationQuota counts per user, per client IP and in total', () => {
    const q = new AllocationQuota({ maxAllocationsPerUser: 2, maxAllocationsPerAddress: 3, maxAllocations: 4, ipv6PrefixLength: 64 });
    expect(q.acquire('a', '10.0.0.1')).toBe(true);
    expect(q.acquire('a', '10.0.0.1')).toBe(true);
    expect(q.acquire('a', '10.0.0.2')).toBe(false);
    expect(q.acquire('b', '10.0.0.1')).toBe(true);
    // 10.0.0.1 holds 3: its per-address quota is reached, whoever asks
    expect(q.acquire('c', '10.0.0.1')).toBe(false);
    expect(q.usedFrom('10.0.0.1')).toBe(3);
    expect(q.acquire('c', '10.0.0.2')).toBe(true);
    // total 4 reached
    expect(q.acquire('d', '10.0.0.3')).toBe(false);
    q.release('a', '10.0.0.1');
    expect(q.usedBy('a')).toBe(1);
    expect(q.usedFrom('10.0.0.1')).toBe(2);
    expect(q.acquire('d', '10.0.0.3')).toBe(true);
    q.release('nobody', '10.0.0.9');
    expect(q.count).toBe(4);
  });
});

/** What the server's gate does for a request without a valid nonce. */
const allow = (limiter: UnauthenticatedLimiter, ip: string): boolean => limiter.allow(ip, false);

describe('TURN quotas: unauthenticated requests', () => {
  it('token bucket per source and global, with bounded state', () => {
    let now = 0;
    const limiter = new UnauthenticatedLimiter(
      {
        unauthenticatedBurst: 3,
        unauthenticatedPerSecond: 1,
        unauthenticatedGlobalBurst: 5,
        unauthenticatedGlobalPerSecond: 2,
        verifiedSourceBurst: 4,
        verifiedSourcePerSecond: 1,
        verifiedGlobalBurst: 6,
        verifiedGlobalPerSecond: 0.001,
        credentialRequestBurst: 2,
        credentialRequestsPerSecond: 1,
        maxTrackedSources: 2,
        ipv6PrefixLength: 64,
      },
      () => now,
    );
    expect([1, 2, 3, 4].map(() => allow(limiter, '10.0.0.1'))).toEqual([true, true, true, false]);
    now = 1000;
    expect(allow(limiter, '10.0.0.1')).toBe(true);
    expect(allow(limiter, '10.0.0.1')).toBe(false);
    // global bucket (burst 5, 2/s): 3 taken at 0 s, refilled to 4 at 1 s, one taken above
    expect(allow(limiter, '10.0.0.2')).toBe(true);
    expect(allow(limiter, '10.0.0.2')).toBe(true);
    expect(allow(limiter, '10.0.0.2')).toBe(true);
    // 10.0.0.3 has tokens of its own but the global bucket is empty, and keeps them
    expect(allow(limiter, '10.0.0.3')).toBe(false);
    // a request with a valid nonce spends the verified pair: its own per-IP bucket (4), not
    // the empty unverified one, and the verified global bucket (6)
    expect([1, 2, 3, 4, 5].map(() => limiter.allow('10.0.0.3', true))).toEqual([true, true, true, true, false]);
    // the verified global bucket caps real sources too: 2 left for everybody, the source keeps its token
    expect([1, 2, 3].map(() => limiter.allow('10.0.0.5', true))).toEqual([true, true, false]);
    expect(limiter.allow('10.0.0.6', true)).toBe(false);
    now = 1500;
    expect(allow(limiter, '10.0.0.4')).toBe(true);
    expect(allow(limiter, '10.0.0.4')).toBe(false);
    // two unverified and two verified per-IP buckets (each table at most maxTrackedSources)
    expect(limiter.trackedSources).toBe(4);
    // per username, bounded too
    expect([1, 2, 3].map(() => limiter.allowCredential('alice'))).toEqual([true, true, false]);
    expect(limiter.allowCredential('bob')).toBe(true);
    expect(limiter.allowCredential('carol')).toBe(true);
    expect(limiter.trackedCredentials).toBe(2);
  });

  it('a source gets back only the verified tokens refunded, up to its burst', () => {
    const limiter = new UnauthenticatedLimiter({ ...DEFAULT_TURN_QUOTAS, verifiedSourceBurst: 2, verifiedSourcePerSecond: 0.001, unauthenticatedBurst: 2, unauthenticatedPerSecond: 0.001 }, () => 0);
    expect([1, 2, 3].map(() => limiter.allow('10.0.0.1', true))).toEqual([true, true, false]);
    expect([1, 2, 3].map(() => limiter.allow('10.0.0.1', false))).toEqual([true, true, false]);
    limiter.refundSource('10.0.0.1');
    limiter.refundSource('10.0.0.1');
    limiter.refundSource('10.0.0.1');
    expect([1, 2, 3].map(() => limiter.allow('10.0.0.1', true))).toEqual([true, true, false]);
    // the unverified bucket got nothing back
    expect(limiter.allow('10.0.0.1', false)).toBe(false);
  });

  it('TokenBucket takes (rate, burst, now) like the signaling one', () => {
    let now = 0;
    const b = new TokenBucket(10, 2, () => now);
    expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
    now = 100; // 10/s: one token per 100 ms
    expect([b.take(), b.take()]).toEqual([true, false]);
    now = 10_000; // never more than the burst
    expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
  });

  it('drops an unauthenticated flood from one source after the burst, silently, while an authenticated client keeps working', async () => {
    const burst = 10;
    const { server, address } = await startServer({ quotas: { unauthenticatedBurst: burst, unauthenticatedPerSecond: 1 } });
    // An established client (its nonce learned before the flood): authenticated requests are never limited.
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
    await alice.allocate();
    const peer = await udpPeer();
    expect((await alice.createPermission(peer.address)).msg.cls).toBe(StunClass.success);
    // The flood: unauthenticated Allocate (401 challenge) and Binding, from the same IP.
    const flood = await TurnTestClient.open(address, 'mallory', 'x');
    let answers = 0;
    flood.socket.on('message', () => answers++);
    const total = 200;
    for (let i = 0; i < total; i++) {
      const method = i % 2 === 0 ? StunMethod.allocate : StunMethod.binding;
      flood.sendRaw(encode({ method, cls: StunClass.request, transactionId: Buffer.alloc(12, i), attributes: method === StunMethod.allocate ? ALLOCATE_ATTRS : [] }));
    }
    // Requests with a forged MESSAGE-INTEGRITY count as unauthenticated too.
    for (let i = 0; i < 20; i++) {
      flood.sendRaw(
        encode(
          {
            method: StunMethod.allocate,
            cls: StunClass.request,
            transactionId: Buffer.alloc(12, 250 - i),
            attributes: [
              ...ALLOCATE_ATTRS,
              { type: StunAttr.username, value: Buffer.from('alice') },
              { type: StunAttr.realm, value: Buffer.from('rallypoint') },
              { type: StunAttr.nonce, value: Buffer.from(alice.nonce!) },
            ],
          },
          { key: Buffer.alloc(16) },
        ),
      );
    }
    // alice keeps working during and after the flood
    expect((await alice.refresh(600)).msg.cls).toBe(StunClass.success);
    alice.sendIndication(peer.address, Buffer.from('through the flood'));
    expect((await peer.next()).data.toString()).toBe('through the flood');
    // A negative: the rest of the flood must stay unanswered, and no event says so; wait
    // well past the time the burst's answers take on loopback.
    await sleep(300);
    // burst answered (less alice's first, unauthenticated, Allocate from the same IP), the
    // rest dropped (at most a token or two refilled meanwhile)
    expect(answers).toBeGreaterThanOrEqual(burst - 1);
    expect(answers).toBeLessThanOrEqual(burst + 1);
    expect(server.allocationCount).toBe(1);
    // a client from another source address still gets its challenge and allocates
    const bob = await TurnTestClient.open(address, 'bob', 'secret-b', '127.0.0.2');
    expect(await allocateCode(bob)).toBe(200);
    // the flooding source stays cut off
    const before = answers;
    flood.sendRaw(encode({ method: StunMethod.binding, cls: StunClass.request, transactionId: Buffer.alloc(12, 1), attributes: [] }));
    await sleep(100); // a negative again: no answer comes
    expect(answers - before).toBeLessThanOrEqual(1);
  });

  it('nonce state stays bounded: challenges arm no timer (node-turn kept a one-hour timer per nonce)', async () => {
    const { address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await c.request(StunMethod.allocate, ALLOCATE_ATTRS, { auth: false });
    const before = timers();
    for (let i = 0; i < 20; i++) {
      const res = await c.request(StunMethod.allocate, ALLOCATE_ATTRS, { auth: false });
      expect(errorCode(res.msg)).toBe(401);
    }
    expect(timers()).toBeLessThanOrEqual(before);
  });

  it('a nonce is good for the address it was issued to, until it expires, and needs no memory of it', () => {
    let now = 1_000_000;
    const nonces = new Nonces(() => now);
    const issued = Array.from({ length: 1000 }, (_, i) => nonces.issue('10.0.0.1', 1000 + i));
    // every one checks, however many were issued after it (nothing was evicted: no table)
    expect(issued.every((n, i) => nonces.check(n, '10.0.0.1', 1000 + i))).toBe(true);
    expect(nonces.check(issued[0], '10.0.0.1', 1001)).toBe(false);
    expect(nonces.check(issued[0], '10.0.0.2', 1000)).toBe(false);
    // another server (another key) never issued it
    expect(new Nonces(() => now).check(issued[0], '10.0.0.1', 1000)).toBe(false);
    now += 3_600_000;
    expect(nonces.check(issued[0], '10.0.0.1', 1000)).toBe(false);
  });
});

describe('TURN per-IP limits: IPv6 counts per /64', () => {
  it('sourceKey: IPv4 as is, IPv4-mapped as IPv4, IPv6 by its prefix', () => {
    expect(sourceKey('192.0.2.1', 64)).toBe('192.0.2.1');
    expect(sourceKey('::ffff:192.0.2.1', 64)).toBe('192.0.2.1');
    expect(sourceKey('2001:db8:1:2::1', 64)).toBe(sourceKey('2001:db8:1:2:ffff:ffff:ffff:ffff', 64));
    expect(sourceKey('2001:db8:1:2::1', 64)).not.toBe(sourceKey('2001:db8:1:3::1', 64));
    expect(sourceKey('2001:db8:1:2::1', 128)).not.toBe(sourceKey('2001:db8:1:2::2', 128));
    // prefixes that are not a whole number of bytes
    expect(sourceKey('2001:db8:1:2::1', 60)).toBe(sourceKey('2001:db8:1:f::1', 60));
    expect(sourceKey('2001:db8:1:2::1', 60)).not.toBe(sourceKey('2001:db8:1:12::1', 60));
    expect(sourceKey('fe80::1%lo', 64)).toBe(sourceKey('fe80::2', 64));
  });

  it('the allocation quota counts a /64 as one client IP (configurable)', () => {
    const q = new AllocationQuota({ maxAllocationsPerUser: 100, maxAllocationsPerAddress: 2, maxAllocations: 100, ipv6PrefixLength: 64 });
    expect(q.acquire('a', '2001:db8:0:1::1')).toBe(true);
    expect(q.acquire('b', '2001:db8:0:1::2')).toBe(true);
    expect(q.acquire('c', '2001:db8:0:1:dead:beef:0:3')).toBe(false);
    expect(q.acquire('c', '2001:db8:0:2::1')).toBe(true);
    expect(q.usedFrom('2001:db8:0:1::99')).toBe(2);
    q.release('a', '2001:db8:0:1::1');
    expect(q.acquire('c', '2001:db8:0:1::3')).toBe(true);
    const whole = new AllocationQuota({ maxAllocationsPerUser: 100, maxAllocationsPerAddress: 1, maxAllocations: 100, ipv6PrefixLength: 128 });
    expect(whole.acquire('a', '2001:db8::1')).toBe(true);
    expect(whole.acquire('a', '2001:db8::2')).toBe(true);
    // IPv4-mapped and IPv4 are one client
    const v4 = new AllocationQuota({ maxAllocationsPerUser: 100, maxAllocationsPerAddress: 1, maxAllocations: 100, ipv6PrefixLength: 64 });
    expect(v4.acquire('a', '192.0.2.1')).toBe(true);
    expect(v4.acquire('a', '::ffff:192.0.2.1')).toBe(false);
  });

  it('the per-IP request bucket counts a /64 as one source', () => {
    const limiter = new UnauthenticatedLimiter({ ...DEFAULT_TURN_QUOTAS, unauthenticatedBurst: 3, unauthenticatedPerSecond: 0.001 }, () => 0);
    // a host hopping over its /64 gets one budget
    expect(Array.from({ length: 4 }, (_, i) => allow(limiter, `2001:db8:0:1::${i + 1}`))).toEqual([true, true, true, false]);
    expect(allow(limiter, '2001:db8:0:2::1')).toBe(true);
    expect(limiter.trackedSources).toBe(2);
    expect([1, 2, 3, 4].map(() => allow(limiter, '::ffff:192.0.2.1'))).toEqual([true, true, true, false]);
    expect(allow(limiter, '192.0.2.1')).toBe(false);
  });
});
