/**
 * TURN metrics over real UDP sockets on loopback: the registry's text after a relay exchange
 * and refusals.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { encode, StunAttr, StunClass, StunMethod } from '../../turn/codec.js';
import { TurnServer, type TurnServerOptions } from '../../turn/index.js';
import { cleanup } from '../helpers/resources.js';
import { errorCode, TurnTestClient, udpPeer } from '../helpers/turn-client.js';
import { startTurnServer } from '../helpers/turn-server.js';

afterEach(async () => {
  await cleanup();
});

const USERS: Record<string, string> = { alice: 'secret-a', bob: 'secret-b' };

const startServer = (extra: Partial<TurnServerOptions> = {}): ReturnType<typeof startTurnServer> => startTurnServer(USERS, extra);

/** The value of one sample line in Prometheus text, or undefined if absent. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('TURN metrics', () => {
  it('has a registry of its own by default, or uses the one given', async () => {
    const own = new TurnServer({ credentials: () => undefined });
    expect(own.metrics.registry).toBeInstanceOf(Registry);
    const registry = new Registry();
    const shared = new TurnServer({ credentials: () => undefined, registry });
    expect(shared.metrics.registry).toBe(registry);
    const text = await registry.metrics();
    expect(sample(text, 'rallypoint_turn_allocations')).toBe(0);
    expect(sample(text, 'rallypoint_turn_refusals_total', '{reason="quota"}')).toBe(0);
  });

  it('counts allocations, relayed bytes and packets by direction, requests by method and refusals by reason', async () => {
    const registry = new Registry();
    const { address } = await startServer({ registry, quotas: { maxAllocationsPerUser: 1 } });
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a');
    await alice.allocate();
    const peer = await udpPeer();
    expect((await alice.createPermission(peer.address)).msg.cls).toBe(StunClass.success);
    expect((await alice.channelBind(0x4001, peer.address)).msg.cls).toBe(StunClass.success);

    // client -> peer: a Send indication (5 bytes) and ChannelData (7 bytes)
    alice.sendIndication(peer.address, Buffer.from('hello'));
    const first = await peer.next();
    alice.channelData(0x4001, Buffer.from('channel'));
    await peer.next();
    // peer -> client: 11 bytes, over the channel
    peer.socket.send(Buffer.from('hello again'), first.from.port, first.from.address);
    expect((await alice.nextData()).data.toString()).toBe('hello again');

    // refusals: a forbidden peer (403), the quota (486), wrong credentials (401), an unknown
    // comprehension-required attribute (420)
    expect(errorCode((await alice.createPermission({ address: '10.0.0.1', port: 9 })).msg)).toBe(403);
    const again = await TurnTestClient.open(address, 'alice', 'secret-a');
    expect(errorCode((await again.request(StunMethod.allocate, [{ type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) }])).msg)).toBe(486);
    const wrong = await TurnTestClient.open(address, 'bob', 'wrong');
    expect(errorCode((await wrong.request(StunMethod.allocate, [{ type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) }])).msg)).toBe(401);
    const unknown = await alice.request(StunMethod.refresh, [{ type: 0x7ff0, value: Buffer.from([1, 2, 3, 4]) }]);
    expect(errorCode(unknown.msg)).toBe(420);
    // Every request above was answered; the last relayed datagram may still be on its way.
    await expect.poll(async () => sample(await registry.metrics(), 'rallypoint_turn_relayed_packets_total', '{direction="to-peer"}')).toBe(2);

    const text = await registry.metrics();
    expect(sample(text, 'rallypoint_turn_allocations')).toBe(1);
    expect(sample(text, 'rallypoint_turn_relayed_bytes_total', '{direction="to-peer"}')).toBe(12);
    expect(sample(text, 'rallypoint_turn_relayed_bytes_total', '{direction="to-client"}')).toBe(11);
    expect(sample(text, 'rallypoint_turn_relayed_packets_total', '{direction="to-peer"}')).toBe(2);
    expect(sample(text, 'rallypoint_turn_relayed_packets_total', '{direction="to-client"}')).toBe(1);
    expect(sample(text, 'rallypoint_turn_refusals_total', '{reason="forbidden-peer"}')).toBe(1);
    expect(sample(text, 'rallypoint_turn_refusals_total', '{reason="quota"}')).toBe(1);
    expect(sample(text, 'rallypoint_turn_refusals_total', '{reason="unauthorized"}')).toBe(1);
    expect(sample(text, 'rallypoint_turn_refusals_total', '{reason="unknown-attribute"}')).toBe(1);
    expect(sample(text, 'rallypoint_turn_refusals_total', '{reason="rate-limited"}')).toBe(0);
    // alice: Allocate x2 (challenge + authenticated); again: x2; wrong: x2
    expect(sample(text, 'rallypoint_turn_requests_total', '{method="allocate"}')).toBe(6);
    expect(sample(text, 'rallypoint_turn_requests_total', '{method="create-permission"}')).toBe(2);
    expect(sample(text, 'rallypoint_turn_requests_total', '{method="channel-bind"}')).toBe(1);
    expect(sample(text, 'rallypoint_turn_requests_total', '{method="refresh"}')).toBe(1);
    expect(text).toContain('# TYPE rallypoint_turn_relayed_bytes_total counter');
    expect(text).toContain('# TYPE rallypoint_turn_allocations gauge');

    // a second scrape does not count twice; deleting the allocation drops the gauge
    expect((await alice.refresh(0)).msg.cls).toBe(StunClass.success);
    const after = await registry.metrics();
    expect(sample(after, 'rallypoint_turn_allocations')).toBe(0);
    expect(sample(after, 'rallypoint_turn_relayed_bytes_total', '{direction="to-peer"}')).toBe(12);
    expect(sample(after, 'rallypoint_turn_requests_total', '{method="refresh"}')).toBe(2);
  });

  it('counts rate-limited unauthenticated requests', async () => {
    const registry = new Registry();
    const { address } = await startServer({ registry, quotas: { unauthenticatedBurst: 2, unauthenticatedPerSecond: 0.1 } });
    const c = await TurnTestClient.open(address, 'mallory', 'x');
    await c.request(StunMethod.binding, [], { auth: false });
    await c.request(StunMethod.binding, [], { auth: false });
    for (let i = 0; i < 5; i++) c.sendRaw(encode({ method: StunMethod.binding, cls: StunClass.request, transactionId: Buffer.alloc(12, i), attributes: [] }));
    // Refused datagrams get no answer to await: wait for the count itself.
    await expect.poll(async () => sample(await registry.metrics(), 'rallypoint_turn_refusals_total', '{reason="rate-limited"}')).toBe(5);
    const text = await registry.metrics();
    expect(sample(text, 'rallypoint_turn_requests_total', '{method="binding"}')).toBe(2);
  });
});
