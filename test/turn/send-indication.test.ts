/**
 * Client Send indications (RFC 8656 section 11.2) take a fast path that skips node-turn's
 * Message.read (turn/codec.ts readSendIndication); these pin that it accepts and refuses what
 * node-turn's path does.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { encode, encodeXorAddress, StunAttr, type StunAttribute, StunClass, StunMethod, type TransportAddress } from '../../turn/codec.js';
import { cleanup } from '../helpers/resources.js';
import { TurnTestClient, udpPeer } from '../helpers/turn-client.js';
import { startTurnServer } from '../helpers/turn-server.js';

afterEach(cleanup);

function sendIndication(peer: TransportAddress, data: string, extra: StunAttribute[] = [], fingerprint = false): Buffer {
  const transactionId = randomBytes(12);
  return encode(
    {
      method: StunMethod.send,
      cls: StunClass.indication,
      transactionId,
      attributes: [{ type: StunAttr.xorPeerAddress, value: encodeXorAddress(peer, transactionId) }, { type: StunAttr.data, value: Buffer.from(data) }, ...extra],
    },
    { fingerprint },
  );
}

describe('Send indications', () => {
  it('relay with FINGERPRINT, DONT-FRAGMENT and comprehension-optional attributes; drop a bad FINGERPRINT or an unknown comprehension-required attribute', async () => {
    const { address } = await startTurnServer({ alice: 'pw' });
    const peer = await udpPeer('127.0.0.1');
    const c = await TurnTestClient.open(address, 'alice', 'pw');
    await c.allocate();
    expect((await c.createPermission(peer.address)).msg.cls).toBe(StunClass.success);

    c.sendRaw(sendIndication(peer.address, 'with fingerprint', [], true));
    expect((await peer.next()).data.toString()).toBe('with fingerprint');
    c.sendRaw(
      sendIndication(peer.address, 'odd length!', [
        { type: 0x001a, value: Buffer.alloc(0) },
        { type: StunAttr.software, value: Buffer.from('x') },
      ]),
    );
    expect((await peer.next()).data.toString()).toBe('odd length!');

    const bad = sendIndication(peer.address, 'bad fingerprint', [], true);
    bad[bad.length - 1]! ^= 1;
    c.sendRaw(bad);
    c.sendRaw(sendIndication(peer.address, 'unknown required', [{ type: 0x7f01, value: Buffer.from([1, 2, 3, 4]) }]));
    // a sentinel on the same path: once it arrived, the two before it were dropped
    c.sendRaw(sendIndication(peer.address, 'sentinel'));
    expect((await peer.next()).data.toString()).toBe('sentinel');
    expect(peer.received).toHaveLength(0);
  });

  it('to a peer without permission are dropped and counted', async () => {
    const { server, address } = await startTurnServer({ alice: 'pw' });
    const peer = await udpPeer('127.0.0.1');
    const other = await udpPeer('127.0.0.1');
    const c = await TurnTestClient.open(address, 'alice', 'pw');
    await c.allocate();
    expect((await c.createPermission(peer.address)).msg.cls).toBe(StunClass.success);
    c.sendRaw(sendIndication({ address: '127.0.0.2', port: other.address.port }, 'no permission'));
    c.sendRaw(sendIndication(peer.address, 'sentinel'));
    expect((await peer.next()).data.toString()).toBe('sentinel');
    expect(other.received).toHaveLength(0);
    expect(await server.metrics.registry.getSingleMetricAsString('rallypoint_turn_refusals_total')).toMatch(/reason="no-permission"} 1\b/);
  });
});
