/**
 * Attack: what one TURN credential (or a captured request) can make the server hold or do.
 * - CreatePermission with thousands of XOR-PEER-ADDRESS, repeated: node-turn's handler (and
 *   ours before the caps) installed them all: 60 requests of 2,700 peers left 162,000
 *   permissions (+92 MB) on one allocation.
 * - Allocations from one host's many ports filled the global quota.
 * - A captured Allocate or CreatePermission replayed from another address, and attributes
 *   appended after MESSAGE-INTEGRITY, were honoured.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { encode, encodeXorAddress, StunAttr, type StunAttribute, StunClass, StunMethod, type TransportAddress } from '../../turn/codec.js';
import type { TurnServer, TurnServerOptions } from '../../turn/index.js';
import { DEFAULT_TURN_QUOTAS } from '../../turn/quotas.js';
import { PERMISSION_MS, type RelayState } from '../../turn/relay-state.js';
import { cleanup } from '../helpers/resources.js';
import { errorCode, type Response, TurnTestClient, udpPeer } from '../helpers/turn-client.js';
import { startTurnServer } from '../helpers/turn-server.js';

afterEach(async () => {
  await cleanup();
});

const USERS: Record<string, string> = { alice: 'secret-a', bob: 'secret-b', carol: 'secret-c', dave: 'secret-d', mallory: 'secret-m' };
const ALLOCATE_ATTRS: StunAttribute[] = [{ type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) }];

const start = (extra: Partial<TurnServerOptions> = {}): ReturnType<typeof startTurnServer> => startTurnServer(USERS, extra);

const code = (res: Response): number => (res.msg.cls === StunClass.success ? 200 : (errorCode(res.msg) ?? -1));

/** The relay state of `client`'s allocation (server internals: the count is not on the wire). */
function relayOf(server: TurnServer, client: TurnTestClient): RelayState | undefined {
  const a = client.socket.address();
  const table = (server as unknown as { allocations?: { at(ip: string, port: number): { relay: RelayState } | undefined } }).allocations;
  return table?.at(a.address, a.port)?.relay;
}

/** Public (allowed by the default policy) peer addresses, distinct IPs. */
function publicPeers(count: number, offset = 0): TransportAddress[] {
  return Array.from({ length: count }, (_, i) => {
    const n = i + offset;
    return { address: `1.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, port: 9 };
  });
}

/** An authenticated request of `client`, as bytes (what an on-path observer captures). */
function signed(client: TurnTestClient, method: number, attrs: (tid: Buffer) => StunAttribute[]): (tid: Buffer) => Buffer {
  return (tid) => client.signed(method, attrs(tid), tid);
}

const peersAttrs =
  (peers: TransportAddress[]) =>
  (tid: Buffer): StunAttribute[] =>
    peers.map((p) => ({ type: StunAttr.xorPeerAddress, value: encodeXorAddress(p, tid) }));

describe('TURN: caps on what one credential can make the server hold', () => {
  it('60 CreatePermission requests with 2,700 peers each install nothing and do not grow the process', async () => {
    const { server, address } = await start();
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
    await alice.allocate();
    // Built before measuring: the test's own garbage is not the server's growth.
    const datagrams = Array.from({ length: 60 }, (_, i) => signed(alice, StunMethod.createPermission, peersAttrs(publicPeers(2_700, i * 2_700)))(Buffer.alloc(12, i)));
    const rss0 = process.memoryUsage().rss;
    for (const d of datagrams) {
      alice.sendRaw(d);
      // A Binding sent after it is answered after it was handled (one socket, one event
      // loop); one at a time, so none is lost to a full socket buffer.
      expect(code(await alice.request(StunMethod.binding, [], { auth: false }))).toBe(200);
    }
    expect(code(await alice.createPermission({ address: '1.255.0.1', port: 9 }))).toBe(200);
    // Each carried more than maxAttributes (64) attributes: dropped unanswered by the codec.
    expect(await server.metrics.registry.metrics()).toMatch(/rallypoint_turn_refusals_total\{reason="malformed"\} 60\n/);
    const relay = relayOf(server, alice);
    expect(relay?.permissionCount).toBe(1);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(30 * 1024 * 1024);
  });

  it('with the attribute cap raised, such requests reach the handler and get 508 (more than 16 peers per request)', async () => {
    const { server, address } = await start({ quotas: { maxAttributes: 4_096 } });
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
    await alice.allocate();
    // One at a time: 60 datagrams of 32 KB at once would overflow the socket buffer.
    const codes: number[] = [];
    for (let i = 0; i < 60; i++) codes.push(code(await alice.transact(signed(alice, StunMethod.createPermission, peersAttrs(publicPeers(2_700, i * 2_700))))));
    expect(codes).toEqual(new Array(60).fill(508));
    expect(relayOf(server, alice)?.permissionCount).toBe(0);
    // 16 is fine; 17 is not.
    expect(code(await alice.transact(signed(alice, StunMethod.createPermission, peersAttrs(publicPeers(16)))))).toBe(200);
    expect(code(await alice.transact(signed(alice, StunMethod.createPermission, peersAttrs(publicPeers(17, 100)))))).toBe(508);
    expect(relayOf(server, alice)?.permissionCount).toBe(16);
  });

  it('permissions per allocation stop at maxPermissionsPerAllocation (508, nothing of the refused request installed)', async () => {
    expect(DEFAULT_TURN_QUOTAS.maxPermissionsPerAllocation).toBe(128);
    const { server, address } = await start();
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
    await alice.allocate();
    const codes: number[] = [];
    for (let i = 0; i < 10; i++) codes.push(code(await alice.transact(signed(alice, StunMethod.createPermission, peersAttrs(publicPeers(16, i * 16))))));
    expect(codes).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 508, 508]);
    expect(relayOf(server, alice)?.permissionCount).toBe(128);
    // Refreshing permissions already held is always fine.
    expect(code(await alice.transact(signed(alice, StunMethod.createPermission, peersAttrs(publicPeers(16)))))).toBe(200);
  });

  it('channels per allocation stop at maxChannelsPerAllocation (508)', async () => {
    const { address } = await start({ quotas: { maxChannelsPerAllocation: 2 } });
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
    await alice.allocate();
    const peers = publicPeers(3);
    expect(code(await alice.channelBind(0x4000, peers[0]!))).toBe(200);
    expect(code(await alice.channelBind(0x4001, peers[1]!))).toBe(200);
    expect(code(await alice.channelBind(0x4002, peers[2]!))).toBe(508);
    // Refreshing a bound channel is fine.
    expect(code(await alice.channelBind(0x4001, peers[1]!))).toBe(200);
  });

  it('permissions that expired do not count against the caps: no 508 for a full table of expired entries', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const { address } = await start({ quotas: { maxPermissionsPerAllocation: 2 } });
      const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
      await alice.allocate();
      const peers = publicPeers(4);
      expect(code(await alice.transact(signed(alice, StunMethod.createPermission, peersAttrs(peers.slice(0, 2)))))).toBe(200);
      expect(code(await alice.createPermission(peers[2]!))).toBe(508);
      // RFC 8656 section 9: a permission lasts 300 s; both are gone after it.
      vi.setSystemTime(Date.now() + PERMISSION_MS + 1000);
      expect(code(await alice.channelBind(0x4000, peers[2]!))).toBe(200);
      expect(code(await alice.createPermission(peers[3]!))).toBe(200);
      expect(code(await alice.createPermission(peers[0]!))).toBe(508);
    } finally {
      vi.useRealTimers();
    }
  });

  it('authenticated requests on one allocation are rate limited (dropped beyond the bucket, counted)', async () => {
    const { server, address } = await start({ quotas: { allocationRequestBurst: 5, allocationRequestsPerSecond: 0.01 } });
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
    await alice.allocate();
    let answers = 0;
    alice.socket.on('message', () => answers++);
    const refresh = signed(alice, StunMethod.refresh, () => []);
    for (let i = 0; i < 20; i++) alice.sendRaw(refresh(Buffer.alloc(12, i + 1)));
    await vi.waitFor(async () => {
      const text = await server.metrics.registry.metrics();
      expect(text).toMatch(/rallypoint_turn_refusals_total\{reason="rate-limited"\} 1[56]/);
    });
    // The Allocate was charged to the source IP's bucket: the allocation did not exist yet.
    expect(answers).toBeGreaterThanOrEqual(4);
    expect(answers).toBeLessThanOrEqual(5);
  });

  it('one client IP holds at most maxAllocationsPerAddress allocations (486), another IP still allocates', async () => {
    expect(DEFAULT_TURN_QUOTAS.maxAllocationsPerAddress * 32).toBeLessThanOrEqual(DEFAULT_TURN_QUOTAS.maxAllocations);
    const { address } = await start({ quotas: { maxAllocationsPerAddress: 3 } });
    const codes: number[] = [];
    for (const user of ['alice', 'bob', 'carol', 'dave']) {
      const c = await TurnTestClient.open(address, user, USERS[user]!);
      codes.push(code(await c.request(StunMethod.allocate, ALLOCATE_ATTRS)));
    }
    expect(codes).toEqual([200, 200, 200, 486]);
    const elsewhere = await TurnTestClient.open(address, 'dave', 'secret-d', '127.0.0.2');
    expect(code(await elsewhere.request(StunMethod.allocate, ALLOCATE_ATTRS))).toBe(200);
  });
});

describe('TURN: captured requests', () => {
  it('an Allocate replayed from another source address gets 438 Stale Nonce and allocates nothing', async () => {
    const { server, address } = await start();
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
    expect(errorCode((await alice.request(StunMethod.allocate, ALLOCATE_ATTRS, { auth: false })).msg)).toBe(401);
    alice.learn((await alice.request(StunMethod.allocate, ALLOCATE_ATTRS, { auth: false })).msg);
    const captured = signed(alice, StunMethod.allocate, () => ALLOCATE_ATTRS);
    const mallory = await TurnTestClient.open(address, 'alice', 'not-known', '127.0.0.3');
    expect(code(await mallory.transact(captured))).toBe(438);
    expect(server.allocationCount).toBe(0);
    // From the address the nonce was issued to, the same request works.
    expect(code(await alice.transact(captured))).toBe(200);
    expect(server.allocationCount).toBe(1);
  });

  it('a CreatePermission replayed from another address (holding an allocation of its own) gets 438', async () => {
    const { address } = await start();
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
    await alice.allocate();
    const captured = signed(alice, StunMethod.createPermission, peersAttrs(publicPeers(1)));
    const mallory = await TurnTestClient.open(address, 'mallory', 'secret-m', '127.0.0.3');
    await mallory.allocate();
    expect(code(await mallory.transact(captured))).toBe(438);
  });

  it('an XOR-PEER-ADDRESS appended after MESSAGE-INTEGRITY is ignored: that peer gets no permission', async () => {
    const { server, address } = await start();
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
    await alice.allocate();
    const p1 = await udpPeer('127.0.0.1');
    const p2 = await udpPeer('127.0.0.5');
    const res = await alice.transact((tid) => {
      const genuine = signed(alice, StunMethod.createPermission, peersAttrs([p1.address]))(tid);
      const extra = encode({ method: 0, cls: 0, transactionId: tid, attributes: peersAttrs([p2.address])(tid) }).subarray(20);
      const forged = Buffer.concat([genuine, extra]);
      forged.writeUInt16BE(forged.length - 20, 2);
      return forged;
    });
    expect(code(res)).toBe(200);
    alice.sendIndication(p2.address, Buffer.from('to p2'));
    alice.sendIndication(p1.address, Buffer.from('to p1'));
    expect((await p1.next()).data.toString()).toBe('to p1');
    // A round trip through the server after both indications: p2's would have arrived by now.
    expect(code(await alice.refresh(600))).toBe(200);
    expect(p2.received).toHaveLength(0);
    expect(relayOf(server, alice)?.permission('127.0.0.5', Date.now())).toBeUndefined();
  });
});
