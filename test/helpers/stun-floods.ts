/**
 * Single UDP datagrams built to cost a STUN parser more than linear work: the attacks of
 * test/adversarial/turn-datagram-flood.test.ts. Each fills (nearly) the largest IPv4 UDP payload
 * with attributes node-turn's Message.read handled one by one, recomputing a CRC-32 or an HMAC
 * over the growing prefix at every FINGERPRINT or MESSAGE-INTEGRITY.
 */
import { encode, StunAttr, StunClass, StunMethod } from '../../turn/codec.js';

/** The largest UDP payload over IPv4. */
const MAX_DATAGRAM = 65_507;

function header(method: number, cls: number, bodyLength: number): Buffer {
  const h = encode({ method, cls, transactionId: Buffer.alloc(12, 7), attributes: [] });
  h.writeUInt16BE(bodyLength, 2);
  return h;
}

/** A Binding request followed by as many FINGERPRINT attributes as fit in one datagram. */
export function fingerprintFlood(): Buffer {
  const n = Math.floor((MAX_DATAGRAM - 20) / 8);
  const body = Buffer.alloc(n * 8);
  for (let i = 0; i < n; i++) {
    body.writeUInt16BE(StunAttr.fingerprint, i * 8);
    body.writeUInt16BE(4, i * 8 + 2);
  }
  return Buffer.concat([header(StunMethod.binding, StunClass.request, body.length), body]);
}

/** A Binding request with 16,000 empty unknown (comprehension-optional) attributes. */
export function unknownFlood(): Buffer {
  const body = Buffer.alloc(16_000 * 4);
  for (let i = 0; i < 16_000; i++) body.writeUInt16BE(0x8fff, i * 4);
  return Buffer.concat([header(StunMethod.binding, StunClass.request, body.length), body]);
}

/**
 * An Allocate naming a valid user, then MESSAGE-INTEGRITY repeated to fill the datagram:
 * node-turn looked the password up and computed an HMAC over the growing prefix at each.
 */
export function integrityFlood(username: string): Buffer {
  const attrs = encode({
    method: StunMethod.allocate,
    cls: StunClass.request,
    transactionId: Buffer.alloc(12, 9),
    attributes: [
      { type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) },
      { type: StunAttr.username, value: Buffer.from(username) },
      { type: StunAttr.realm, value: Buffer.from('rallypoint') },
      { type: StunAttr.nonce, value: Buffer.alloc(58, 'a') },
    ],
  }).subarray(20);
  const n = Math.floor((MAX_DATAGRAM - 20 - attrs.length) / 24);
  const mi = Buffer.alloc(n * 24);
  for (let i = 0; i < n; i++) {
    mi.writeUInt16BE(StunAttr.messageIntegrity, i * 24);
    mi.writeUInt16BE(20, i * 24 + 2);
  }
  return Buffer.concat([header(StunMethod.allocate, StunClass.request, attrs.length + mi.length), attrs, mi]);
}
