/**
 * TURN quotas over real UDP sockets on loopback: allocations per user and in total (486,
 * RFC 8656 section 7.2), the unauthenticated request rate limit (silent drops), bounded state.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { TurnError, TurnServer, type TurnServerOptions } from '../../turn/index.js';
import { AllocationQuota, DEFAULT_TURN_QUOTAS, resolveQuotas, UnauthenticatedLimiter } from '../../turn/quotas.js';
import { encode, getAttr, StunAttr, StunClass, StunMethod, type TransportAddress } from '../../turn/stun.js';
import { cleanup } from '../helpers/resources.js';
import { startTurnServer } from '../helpers/turn-server.js';
import { errorCode, TurnTestClient, udpPeer } from '../helpers/turn-client.js';

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
    { maxAllocatoins: 3 },
  ])('rejects %o with TURN_BAD_QUOTA', (quotas) => {
    const make = (): TurnServer => new TurnServer({ credentials: () => undefined, quotas: quotas as TurnServerOptions['quotas'] });
    expect(make).toThrow(TurnError);
    expect(make).toThrow(expect.objectContaining({ code: 'TURN_BAD_QUOTA' }));
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
    const q = new AllocationQuota({ maxAllocationsPerUser: 2, maxAllocationsPerAddress: 3, maxAllocations: 4 });
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

describe('TURN quotas: unauthenticated requests', () => {
  it('token bucket per source and global, with bounded state', () => {
    let now = 0;
    const limiter = new UnauthenticatedLimiter(
      { unauthenticatedBurst: 3, unauthenticatedPerSecond: 1, unauthenticatedGlobalBurst: 5, unauthenticatedGlobalPerSecond: 2, maxTrackedSources: 2 },
      () => now,
    );
    expect([1, 2, 3, 4].map(() => limiter.allow('10.0.0.1'))).toEqual([true, true, true, false]);
    now = 1000;
    expect(limiter.allow('10.0.0.1')).toBe(true);
    expect(limiter.allow('10.0.0.1')).toBe(false);
    // global bucket (burst 5, 2/s): 3 taken at 0 s, refilled to 4 at 1 s, one taken above
    expect(limiter.allow('10.0.0.2')).toBe(true);
    expect(limiter.allow('10.0.0.2')).toBe(true);
    expect(limiter.allow('10.0.0.2')).toBe(true);
    // 10.0.0.3 has tokens of its own but the global bucket is empty
    expect(limiter.allow('10.0.0.3')).toBe(false);
    now = 1500;
    expect(limiter.allow('10.0.0.3')).toBe(true);
    expect(limiter.allow('10.0.0.3')).toBe(false);
    expect(limiter.trackedSources).toBe(2);
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
    await sleep(100);
    expect(answers - before).toBeLessThanOrEqual(1);
  });

  it('nonce state stays bounded: challenges add no per-nonce state', async () => {
    const { server, address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    for (let i = 0; i < 20; i++) {
      const res = await c.request(StunMethod.allocate, ALLOCATE_ATTRS, { auth: false });
      expect(errorCode(res.msg)).toBe(401);
    }
    // node-turn's authentification (a map with a timer per nonce) is not used at all.
    const nonces = (server as unknown as { nonces: object }).nonces;
    expect(Object.keys(nonces).sort()).toEqual(['key', 'now']);
  });
});
