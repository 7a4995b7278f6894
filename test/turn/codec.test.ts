/**
 * The pre-authentication codec (turn/codec.ts readHeader, scanAttributes): every datagram's
 * bytes pass it before node-turn sees them, so it must refuse bad layouts in bounded work and
 * stop where RFC 8489 sections 14.5 and 14.7 say.
 */
import { describe, expect, it } from 'vitest';
import { encode, fingerprintMatches, integrityMatches, readHeader, StunAttr, type StunAttribute, StunClass, StunMethod, scanAttributes } from '../../turn/codec.js';

const TID = Buffer.alloc(12, 3);
const KEY = Buffer.alloc(16, 1);
const attrs: StunAttribute[] = [
  { type: StunAttr.username, value: Buffer.from('alice') },
  { type: StunAttr.lifetime, value: Buffer.from([0, 0, 2, 88]) },
];
const msg = (extra: { key?: Buffer; fingerprint?: boolean } = {}, list = attrs): Buffer => encode({ method: StunMethod.refresh, cls: StunClass.request, transactionId: TID, attributes: list }, extra);

function attr(type: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + value.length + ((4 - (value.length % 4)) % 4));
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(value.length, 2);
  value.copy(b, 4);
  return b;
}

/** `buf` with `tail` appended and the header's length fixed. */
function append(buf: Buffer, tail: Buffer): Buffer {
  const out = Buffer.concat([buf, tail]);
  out.writeUInt16BE(out.length - 20, 2);
  return out;
}

describe('readHeader', () => {
  it('reads method and class of a well-formed message', () => {
    expect(readHeader(msg())).toEqual({ method: StunMethod.refresh, cls: StunClass.request });
  });

  it('refuses a length that does not account for exactly the rest of the datagram, a bad cookie, the top bits set', () => {
    const m = msg();
    expect(readHeader(Buffer.concat([m, Buffer.alloc(4)]))).toBeUndefined();
    expect(readHeader(m.subarray(0, m.length - 4))).toBeUndefined();
    // a length that matches the datagram but is not a multiple of 4
    const odd = Buffer.from(m.subarray(0, m.length - 2));
    odd.writeUInt16BE(odd.length - 20, 2);
    expect(readHeader(odd)).toBeUndefined();
    const cookie = Buffer.from(m);
    cookie[4] = cookie[4]! ^ 1;
    expect(readHeader(cookie)).toBeUndefined();
    const bits = Buffer.from(m);
    bits[0] = bits[0]! | 0x40;
    expect(readHeader(bits)).toBeUndefined();
    expect(readHeader(m.subarray(0, 19))).toBeUndefined();
  });
});

describe('scanAttributes', () => {
  it('lists the attributes, finds MESSAGE-INTEGRITY and FINGERPRINT, and both check out', () => {
    const m = msg({ key: KEY, fingerprint: true });
    const scan = scanAttributes(m, 64);
    if (typeof scan === 'string') throw new Error(scan);
    expect(scan.attributes.map((a) => a.type)).toEqual([StunAttr.username, StunAttr.lifetime]);
    expect(m.readUInt16BE(scan.integrity)).toBe(StunAttr.messageIntegrity);
    expect(scan.fingerprint).toBe(m.length - 8);
    expect(fingerprintMatches(m, scan.fingerprint)).toBe(true);
    expect(integrityMatches(m, scan.integrity, KEY)).toBe(true);
    expect(integrityMatches(m, scan.integrity, Buffer.alloc(16, 2))).toBe(false);
  });

  it('ignores what follows MESSAGE-INTEGRITY (RFC 8489 section 14.5), except a FINGERPRINT that is last', () => {
    const signed = msg({ key: KEY });
    const forged = append(signed, attr(StunAttr.xorPeerAddress, Buffer.alloc(8)));
    const scan = scanAttributes(forged, 64);
    if (typeof scan === 'string') throw new Error(scan);
    expect(scan.attributes.map((a) => a.type)).toEqual([StunAttr.username, StunAttr.lifetime]);
    // the HMAC still covers exactly the signed part
    expect(integrityMatches(forged, scan.integrity, KEY)).toBe(true);
  });

  it('refuses a FINGERPRINT that is not last, or of the wrong length', () => {
    const fp = attr(StunAttr.fingerprint, Buffer.alloc(4));
    expect(scanAttributes(append(msg({}, []), Buffer.concat([fp, attr(StunAttr.username, Buffer.from('x'))])), 64)).toBe('malformed');
    expect(scanAttributes(append(msg({}, []), attr(StunAttr.fingerprint, Buffer.alloc(8))), 64)).toBe('malformed');
    expect(scanAttributes(append(msg({}, []), Buffer.concat([fp, fp])), 64)).toBe('malformed');
  });

  it('refuses an attribute running past the end, and a MESSAGE-INTEGRITY of the wrong length', () => {
    const bad = append(msg({}, []), attr(StunAttr.username, Buffer.from('abcd')));
    bad.writeUInt16BE(40, 22);
    expect(scanAttributes(bad, 64)).toBe('malformed');
    expect(scanAttributes(append(msg({}, []), attr(StunAttr.messageIntegrity, Buffer.alloc(16))), 64)).toBe('malformed');
  });

  it('stops after maxAttributes, also counting what follows MESSAGE-INTEGRITY', () => {
    const many = append(msg({}, []), Buffer.concat(Array.from({ length: 65 }, () => attr(0x8fff, Buffer.alloc(0)))));
    expect(scanAttributes(many, 64)).toBe('too-many-attributes');
    expect(scanAttributes(many, 65)).not.toBe('too-many-attributes');
    const repeated = append(msg({ key: KEY }), Buffer.concat(Array.from({ length: 64 }, () => attr(StunAttr.messageIntegrity, Buffer.alloc(20)))));
    expect(scanAttributes(repeated, 64)).toBe('too-many-attributes');
  });
});
