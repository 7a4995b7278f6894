/**
 * Regression: an IPv4 client of a dual-stack (`::`) listener arrives as `::ffff:a.b.c.d`, and
 * its XOR-MAPPED-ADDRESS (Binding and Allocate answers) was encoded with the IPv6 family: the
 * client learnt an IPv6 address it has no route in instead of its IPv4 one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decodeXorAddress, encode, StunAttr, StunClass, StunMethod } from '../../turn/codec.js';
import { mappedAddress, replyAddress } from '../../turn/node-turn.js';
import { cleanup } from '../helpers/resources.js';
import { getAttr } from '../helpers/stun-codec.js';
import { TurnTestClient } from '../helpers/turn-client.js';
import { startTurnServer } from '../helpers/turn-server.js';

afterEach(async () => {
  await cleanup();
});

const IPV4 = 1;
const IPV6 = 2;

describe('TURN: the mapped address of an IPv4 client', () => {
  it('replyAddress keeps the socket form (replies are sent to it); mappedAddress reports IPv4-mapped as IPv4', () => {
    const v4mapped = replyAddress('::ffff:192.0.2.7', 5000);
    // a udp6 socket can send to this, not to 192.0.2.7
    expect(v4mapped.family).toBe(IPV6);
    expect(mappedAddress(v4mapped)).toMatchObject({ family: IPV4, address: '192.0.2.7', port: 5000 });
    expect(mappedAddress(replyAddress('0:0:0:0:0:ffff:c000:207', 1))).toMatchObject({ family: IPV4, address: '192.0.2.7', port: 1 });
    // IPv4 and real IPv6 addresses are left alone (IPv4-compatible ::c000:207 is not mapped)
    expect(mappedAddress(replyAddress('192.0.2.7', 2))).toMatchObject({ family: IPV4, address: '192.0.2.7', port: 2 });
    expect(mappedAddress(replyAddress('2001:db8::1', 3))).toMatchObject({ family: IPV6, port: 3 });
    expect(mappedAddress(replyAddress('::c000:207', 4))).toMatchObject({ family: IPV6, port: 4 });
    expect(mappedAddress(replyAddress('::ffff:0:c000:207', 4)).family).toBe(IPV6);
  });

  it('on a :: listener, an IPv4 client gets its IPv4 address back from Binding and Allocate', async () => {
    const { address } = await startTurnServer({ alice: 'secret-a' }, { host: '::', relayAddress: '127.0.0.1' });
    const server = { address: '127.0.0.1', port: address.port };
    const c = await TurnTestClient.open(server, 'alice', 'secret-a', '127.0.0.1');
    const self = c.socket.address().port;
    const binding = await c.transact((tid) => encode({ method: StunMethod.binding, cls: StunClass.request, transactionId: tid, attributes: [] }));
    const bound = getAttr(binding.msg, StunAttr.xorMappedAddress)!;
    expect(bound[1]).toBe(IPV4);
    expect(decodeXorAddress(bound, binding.msg.transactionId)).toEqual({ address: '127.0.0.1', port: self });
    const { res } = await c.allocate();
    const mapped = getAttr(res.msg, StunAttr.xorMappedAddress)!;
    expect(mapped[1]).toBe(IPV4);
    expect(decodeXorAddress(mapped, res.msg.transactionId)).toEqual({ address: '127.0.0.1', port: self });
  });
});
