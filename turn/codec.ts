/**
 * The STUN/TURN message codec (RFC 8489 sections 5 and 14, RFC 8656 section 18): what the
 * server's pre-authentication gate reads (readHeader, scanAttributes, one CRC-32, one HMAC:
 * every byte a stranger sends passes here before node-turn decodes a value), the relay hot
 * path's messages (readSendIndication, dataIndicationHead), 420 answers, and the encoder the
 * tests' client uses. node-turn keeps decoding known attribute values and encoding replies
 * (turn/node-turn.ts).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { crc32 } from 'node:zlib';
import { ipBytes } from './ip.js';

export const MAGIC_COOKIE = 0x2112a442;
/** The protocol number REQUESTED-TRANSPORT names for UDP (RFC 8656 section 18), the only transport relayed. */
export const UDP_PROTOCOL = 0x11;
const FINGERPRINT_XOR = 0x5354554e;

export const StunClass = { request: 0, indication: 1, success: 2, error: 3 } as const;
export const StunMethod = {
  binding: 0x001,
  allocate: 0x003,
  refresh: 0x004,
  send: 0x006,
  data: 0x007,
  createPermission: 0x008,
  channelBind: 0x009,
} as const;
export const StunAttr = {
  username: 0x0006,
  messageIntegrity: 0x0008,
  errorCode: 0x0009,
  unknownAttributes: 0x000a,
  channelNumber: 0x000c,
  lifetime: 0x000d,
  xorPeerAddress: 0x0012,
  data: 0x0013,
  realm: 0x0014,
  nonce: 0x0015,
  xorRelayedAddress: 0x0016,
  requestedTransport: 0x0019,
  xorMappedAddress: 0x0020,
  software: 0x8022,
  fingerprint: 0x8028,
} as const;

export interface StunAttribute {
  type: number;
  value: Buffer;
}

export interface StunMessage {
  method: number;
  cls: number;
  transactionId: Buffer;
  attributes: StunAttribute[];
}

export interface TransportAddress {
  address: string;
  port: number;
}

/** RFC 8489 section 5: method and class bits interleaved in the 14-bit message type. */
export function messageType(method: number, cls: number): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7);
}

const DATA_INDICATION_TYPE = messageType(StunMethod.data, StunClass.indication);

/** RFC 8489 section 9.2.2: long-term key = MD5(username ":" realm ":" password). */
export function longTermKey(username: string, realm: string, password: string): Buffer {
  return createHash('md5').update(`${username}:${realm}:${password}`).digest();
}

export interface EncodeOptions {
  key?: Buffer;
  fingerprint?: boolean;
}

function attrBuf(type: number, value: Buffer): Buffer {
  const pad = (4 - (value.length % 4)) % 4;
  const b = Buffer.alloc(4 + value.length + pad);
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(value.length, 2);
  value.copy(b, 4);
  return b;
}

export function encode(msg: StunMessage, opts: EncodeOptions = {}): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt16BE(messageType(msg.method, msg.cls), 0);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  msg.transactionId.copy(header, 8);
  let body = Buffer.concat(msg.attributes.map((a) => attrBuf(a.type, a.value)));
  if (opts.key) {
    header.writeUInt16BE(body.length + 24, 2);
    const mac = createHmac('sha1', opts.key)
      .update(Buffer.concat([header, body]))
      .digest();
    body = Buffer.concat([body, attrBuf(StunAttr.messageIntegrity, mac)]);
  }
  if (opts.fingerprint) {
    header.writeUInt16BE(body.length + 8, 2);
    const v = Buffer.alloc(4);
    v.writeUInt32BE((crc32(Buffer.concat([header, body])) ^ FINGERPRINT_XOR) >>> 0, 0);
    body = Buffer.concat([body, attrBuf(StunAttr.fingerprint, v)]);
  }
  header.writeUInt16BE(body.length, 2);
  return Buffer.concat([header, body]);
}

/** Zero padding to a multiple of 4 bytes (RFC 8489 section 14), by length; never written to. */
export const PADDING: readonly Buffer[] = [Buffer.alloc(0), Buffer.alloc(1), Buffer.alloc(2), Buffer.alloc(3)];

/** Where a server-originated message's transaction id comes from (turn/transaction-ids.ts). */
export interface TransactionIdSource {
  writeTo(target: Buffer, offset: number): void;
}

/**
 * The bytes of a Data indication (RFC 8656 section 11.3) that precede the application data:
 * the 20-byte header, XOR-PEER-ADDRESS (`peerIp` is 4 or 16 bytes, from `ipBytes`) and the
 * DATA attribute's header. Send `[head, data, PADDING[pad]]` in one datagram: the data is not
 * copied. The attributes and their order are node-turn's, without FINGERPRINT (node-turn
 * added it only to responses to requests that carried one, never to an indication).
 */
export function dataIndicationHead(peerIp: Buffer, peerPort: number, dataLength: number, ids: TransactionIdSource): Buffer {
  const addrLen = peerIp.length === 4 ? 8 : 20;
  const pad = (4 - (dataLength % 4)) % 4;
  const head = Buffer.allocUnsafe(20 + 4 + addrLen + 4);
  head.writeUInt16BE(DATA_INDICATION_TYPE, 0);
  head.writeUInt16BE(4 + addrLen + 4 + dataLength + pad, 2);
  head.writeUInt32BE(MAGIC_COOKIE, 4);
  ids.writeTo(head, 8);
  head.writeUInt16BE(StunAttr.xorPeerAddress, 20);
  head.writeUInt16BE(addrLen, 22);
  head[24] = 0;
  head[25] = peerIp.length === 4 ? 1 : 2;
  head.writeUInt16BE(peerPort ^ (MAGIC_COOKIE >>> 16), 26);
  // RFC 8489 section 14.2: the address XORed with the magic cookie, then (IPv6) the
  // transaction id, which sits right after the cookie in the header.
  for (let i = 0; i < peerIp.length; i++) head[28 + i] = peerIp[i]! ^ head[4 + i]!;
  const d = 20 + 4 + addrLen;
  head.writeUInt16BE(StunAttr.data, d);
  head.writeUInt16BE(dataLength, d + 2);
  return head;
}

/** A Send indication the fast path understood (RFC 8656 section 11.2). */
export interface SendIndication {
  /** The peer's IP in inet_ntop form for IPv4; for IPv6 as decodeXorAddress gives it. */
  address: string;
  family: 4 | 6;
  port: number;
  data: Buffer;
}

const SEND_INDICATION_TYPE = messageType(StunMethod.send, StunClass.indication);
const DONT_FRAGMENT = 0x001a;

/**
 * Reads a client's Send indication without node-turn's Message.read (an object per
 * attribute, hex transaction ids, regexps; about half the server's time on this path).
 * 'drop' for a bad FINGERPRINT (RFC 8489 section 7.3: discarded); 'other' for anything it
 * does not handle the way node-turn's path would (another message, an attribute other than
 * XOR-PEER-ADDRESS, DATA, DONT-FRAGMENT, FINGERPRINT or a comprehension-optional one, odd
 * lengths, a missing attribute): the caller hands those to node-turn, so behaviour is the same.
 */
export function readSendIndication(buf: Buffer): SendIndication | 'drop' | 'other' {
  if (buf.length < 20 || buf.readUInt16BE(0) !== SEND_INDICATION_TYPE || buf.readUInt32BE(4) !== MAGIC_COOKIE) return 'other';
  const end = 20 + buf.readUInt16BE(2);
  if (end > buf.length || end % 4 !== 0) return 'other';
  let peer: Buffer | undefined;
  let data: Buffer | undefined;
  let off = 20;
  while (off < end) {
    if (off + 4 > end) return 'other';
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    if (off + 4 + len > end) return 'other';
    if (type === StunAttr.xorPeerAddress) {
      peer ??= buf.subarray(off + 4, off + 4 + len);
    } else if (type === StunAttr.data) {
      data ??= buf.subarray(off + 4, off + 4 + len);
    } else if (type === StunAttr.fingerprint) {
      // RFC 8489 section 14.7: the last attribute, CRC-32 of the message before it.
      if (len !== 4 || off + 8 !== end) return 'other';
      if ((crc32(buf.subarray(0, off)) ^ FINGERPRINT_XOR) >>> 0 !== buf.readUInt32BE(off + 4)) return 'drop';
    } else if (type !== DONT_FRAGMENT && type < 0x8000) {
      return 'other';
    }
    off += 4 + len + ((4 - (len % 4)) % 4);
  }
  if (!peer || !data) return 'other';
  const port = peer.length >= 4 ? peer.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16) : 0;
  if (peer.length === 8 && peer[1] === 1) {
    const address = `${peer[4]! ^ 0x21}.${peer[5]! ^ 0x12}.${peer[6]! ^ 0xa4}.${peer[7]! ^ 0x42}`;
    return { address, family: 4, port, data };
  }
  if (peer.length === 20 && peer[1] === 2) {
    return { address: decodeXorAddress(peer, buf.subarray(8, 20)).address, family: 6, port, data };
  }
  return 'other';
}

export function encodeXorAddress(addr: TransportAddress, transactionId: Buffer): Buffer {
  const v4 = isIPv4(addr.address);
  const b = Buffer.alloc(v4 ? 8 : 20);
  b[1] = v4 ? 1 : 2;
  b.writeUInt16BE(addr.port ^ (MAGIC_COOKIE >>> 16), 2);
  const raw = ipBytes(addr.address);
  const key = Buffer.alloc(16);
  key.writeUInt32BE(MAGIC_COOKIE, 0);
  transactionId.copy(key, 4);
  for (let i = 0; i < raw.length; i++) b[4 + i] = raw[i]! ^ key[i]!;
  return b;
}

export function decodeXorAddress(v: Buffer, transactionId: Buffer): TransportAddress {
  const port = v.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16);
  const key = Buffer.alloc(16);
  key.writeUInt32BE(MAGIC_COOKIE, 0);
  transactionId.copy(key, 4);
  if (v[1] === 1) {
    return { address: [0, 1, 2, 3].map((i) => v[4 + i]! ^ key[i]!).join('.'), port };
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((v.readUInt16BE(4 + i) ^ key.readUInt16BE(i)).toString(16));
  return { address: groups.join(':'), port };
}

// --- the pre-authentication gate --------------------------------------------------------------

/** The 20-byte header of a datagram that may be a STUN message (RFC 8489 section 5). */
export interface StunHeader {
  method: number;
  cls: number;
}

/**
 * Reads the header, O(1): the top two bits zero, the magic cookie, and a length that is a
 * multiple of 4 and accounts for exactly the rest of the datagram (RFC 8489 section 6.3:
 * over UDP the datagram is one message, nothing before or after it). Undefined otherwise.
 */
export function readHeader(buf: Buffer): StunHeader | undefined {
  if (buf.length < 20 || (buf[0]! & 0xc0) !== 0 || buf.readUInt32BE(4) !== MAGIC_COOKIE) return undefined;
  const length = buf.readUInt16BE(2);
  if (length % 4 !== 0 || length + 20 !== buf.length) return undefined;
  const t = buf.readUInt16BE(0);
  return { method: (t & 0x000f) | ((t & 0x00e0) >> 1) | ((t & 0x3e00) >> 2), cls: ((t & 0x0010) >> 4) | ((t & 0x0100) >> 7) };
}

/** Where an attribute sits in the datagram: its type, and its value at [offset, offset + length). */
export interface AttributeSpan {
  type: number;
  offset: number;
  length: number;
}

export interface StunScan {
  /** The attributes before MESSAGE-INTEGRITY (all of them, less FINGERPRINT, if there is none). */
  attributes: AttributeSpan[];
  /** Offset of the MESSAGE-INTEGRITY attribute's header, or -1. */
  integrity: number;
  /** Offset of the FINGERPRINT attribute's header (always the last attribute), or -1. */
  fingerprint: number;
}

/** Why `scanAttributes` refused a datagram; the server drops it unanswered either way. */
export type ScanRefusal = 'malformed' | 'too-many-attributes';

/**
 * The attributes' layout, without decoding or hashing anything: one pass, at most
 * `maxAttributes` steps, so any datagram costs a small, bounded amount of work. RFC 8489:
 * every attribute must fit in the message (section 14); FINGERPRINT must be the last one
 * (section 14.7); attributes after MESSAGE-INTEGRITY are ignored, except
 * MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (section 14.5), so they are not returned: a peer
 * address appended to a captured request after its MESSAGE-INTEGRITY is never acted upon.
 * Call after `readHeader` accepted the datagram.
 */
export function scanAttributes(buf: Buffer, maxAttributes: number): StunScan | ScanRefusal {
  const end = buf.length;
  const attributes: AttributeSpan[] = [];
  let integrity = -1;
  let count = 0;
  let off = 20;
  while (off < end) {
    if (++count > maxAttributes) return 'too-many-attributes';
    if (off + 4 > end) return 'malformed';
    const type = buf.readUInt16BE(off);
    const length = buf.readUInt16BE(off + 2);
    if (off + 4 + length > end) return 'malformed';
    if (type === StunAttr.fingerprint) {
      if (length !== 4 || off + 8 !== end) return 'malformed';
      return { attributes, integrity, fingerprint: off };
    }
    if (integrity < 0) {
      if (type === StunAttr.messageIntegrity) {
        if (length !== 20) return 'malformed';
        integrity = off;
      } else {
        attributes.push({ type, offset: off + 4, length });
      }
    }
    // After MESSAGE-INTEGRITY: ignored (MESSAGE-INTEGRITY-SHA256 included: not supported), but
    // still walked and counted, to find a FINGERPRINT that must be last.
    off += 4 + length + ((4 - (length % 4)) % 4);
  }
  return { attributes, integrity, fingerprint: -1 };
}

/** RFC 8489 section 14.7: the CRC-32 of the message before FINGERPRINT, XOR 0x5354554e. One pass. */
export function fingerprintMatches(buf: Buffer, at: number): boolean {
  return (crc32(buf.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0 === buf.readUInt32BE(at + 4);
}

/**
 * RFC 8489 section 14.5: HMAC-SHA1 over the message up to MESSAGE-INTEGRITY (at `at`), with
 * the header's length as if MESSAGE-INTEGRITY were the last attribute. One pass, constant
 * time comparison.
 */
export function integrityMatches(buf: Buffer, at: number, key: Buffer): boolean {
  const length = Buffer.allocUnsafe(2);
  length.writeUInt16BE(at - 20 + 24, 0);
  const mac = createHmac('sha1', key).update(buf.subarray(0, 2)).update(length).update(buf.subarray(4, at)).digest();
  return timingSafeEqual(mac, buf.subarray(at + 4, at + 24));
}
