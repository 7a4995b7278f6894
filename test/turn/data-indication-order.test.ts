/**
 * Regression: node-turn 0.0.6 `message.data()` (lib/message.js) took each Data indication's
 * transaction id from the async `crypto.randomBytes(12, cb)`, a libuv thread-pool job per
 * datagram; the pool's completions come back in any order, so the client got the peer's
 * datagrams reordered (BENCHMARKS.md, "TURN relay: where the time goes", "What changed" 1).
 * RFC 8656 promises no ordering, but a relay must not add reordering the path does not have.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decodeXorAddress, StunAttr, StunClass, StunMethod } from '../../turn/codec.js';
import { cleanup } from '../helpers/resources.js';
import { decode, getAttr, isStunPacket } from '../helpers/stun-codec.js';
import { TurnTestClient, udpPeer } from '../helpers/turn-client.js';
import { startTurnServer } from '../helpers/turn-server.js';

afterEach(cleanup);

const BURSTS = 20;
const BURST = 500;
const SIZE = 100;

function datagram(seq: number): Buffer {
  const b = Buffer.alloc(SIZE);
  b.writeUInt32BE(seq, 0);
  return b;
}

describe('Data indications', () => {
  it('reach the client in the order the peer sent them (node-turn message.data() async randomBytes)', async () => {
    const { address } = await startTurnServer({ alice: 'pw' });
    const peer = await udpPeer('127.0.0.1');
    const c = await TurnTestClient.open(address, 'alice', 'pw');
    const { relayed } = await c.allocate();
    expect((await c.createPermission(peer.address)).msg.cls).toBe(StunClass.success);

    // The wire format stays node-turn's: XOR-PEER-ADDRESS then DATA, no FINGERPRINT (the
    // client's requests carried none), a fresh transaction id each.
    const raw: Buffer[] = [];
    c.socket.on('message', (buf) => {
      if (raw.length < 2 && isStunPacket(buf) && decode(buf).method === StunMethod.data) raw.push(buf);
    });

    const arrived: number[] = [];
    let seq = 0;
    const send = (): void => {
      peer.socket.send(datagram(seq++), relayed.port, relayed.address);
    };
    for (let b = 0; b < BURSTS; b++) {
      const burstEnd = seq + BURST;
      while (seq < burstEnd) send();
      // Then numbered sentinels until one (or anything later) arrives: the client's socket
      // buffer drops part of a burst, so the wait is for the first datagram sent after it.
      const retry = setInterval(send, 5);
      try {
        for (;;) {
          const got = await c.nextData();
          expect(got.peer).toEqual(peer.address);
          const n = got.data.readUInt32BE(0);
          arrived.push(n);
          if (n >= burstEnd) break;
        }
      } finally {
        clearInterval(retry);
      }
    }

    let outOfOrder = 0;
    for (let i = 1; i < arrived.length; i++) if (arrived[i]! < arrived[i - 1]!) outOfOrder++;
    // Enough arrived for the check to mean something (on loopback about half of each burst).
    expect(arrived.length).toBeGreaterThan(BURSTS * 50);
    expect(outOfOrder).toBe(0);

    expect(raw.length).toBe(2);
    const [first, second] = raw.map(decode);
    expect(first!.cls).toBe(StunClass.indication);
    expect(first!.attributes.map((a) => a.type)).toEqual([StunAttr.xorPeerAddress, StunAttr.data]);
    expect(decodeXorAddress(getAttr(first!, StunAttr.xorPeerAddress)!, first!.transactionId)).toEqual(peer.address);
    expect(getAttr(first!, StunAttr.data)!.length).toBe(SIZE);
    expect(first!.transactionId.equals(second!.transactionId)).toBe(false);
  });
});
