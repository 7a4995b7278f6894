/**
 * The whole-message STUN decoder and integrity check the tests read server answers with.
 * Unbounded (every attribute is decoded) and not constant-time: for tests only. The server's
 * own pre-authentication codec is bounded (turn/codec.ts readHeader, scanAttributes,
 * integrityMatches).
 */
import { createHmac } from 'node:crypto';
import { MAGIC_COOKIE, StunAttr, type StunAttribute, type StunMessage } from '../../turn/codec.js';

export function isStunPacket(buf: Buffer): boolean {
  return buf.length >= 20 && (buf[0]! & 0xc0) === 0 && buf.readUInt32BE(4) === MAGIC_COOKIE;
}

/** RFC 8656 section 12.4: ChannelData messages start with 0b01. */
export function isChannelData(buf: Buffer): boolean {
  return buf.length >= 4 && (buf[0]! & 0xc0) === 0x40;
}

export function decode(buf: Buffer): StunMessage {
  if (!isStunPacket(buf)) throw new Error('not a STUN message');
  const t = buf.readUInt16BE(0);
  const length = buf.readUInt16BE(2);
  if (length + 20 > buf.length || length % 4 !== 0) throw new Error('bad STUN length');
  const method = (t & 0x000f) | ((t & 0x00e0) >> 1) | ((t & 0x3e00) >> 2);
  const cls = ((t & 0x0010) >> 4) | ((t & 0x0100) >> 7);
  const attributes: StunAttribute[] = [];
  let off = 20;
  while (off + 4 <= 20 + length) {
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    if (off + 4 + len > 20 + length) throw new Error('bad attribute length');
    attributes.push({ type, value: buf.subarray(off + 4, off + 4 + len) });
    off += 4 + len + ((4 - (len % 4)) % 4);
  }
  return { method, cls, transactionId: Buffer.from(buf.subarray(8, 20)), attributes };
}

export function getAttr(msg: StunMessage, type: number): Buffer | undefined {
  return msg.attributes.find((a) => a.type === type)?.value;
}

/** RFC 8489 section 14.5: HMAC-SHA1 over the message up to MESSAGE-INTEGRITY, length adjusted. */
export function verifyIntegrity(buf: Buffer, key: Buffer): boolean {
  let off = 20;
  const end = 20 + buf.readUInt16BE(2);
  while (off + 4 <= end) {
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    if (type === StunAttr.messageIntegrity) {
      const head = Buffer.from(buf.subarray(0, off));
      head.writeUInt16BE(off - 20 + 24, 2);
      const mac = createHmac('sha1', key).update(head).digest();
      return mac.equals(buf.subarray(off + 4, off + 24));
    }
    off += 4 + len + ((4 - (len % 4)) % 4);
  }
  return false;
}
