/**
 * The one seam between the embedded TURN server and node-turn 0.0.6 (plain JS, no types):
 * nothing else imports node-turn. What node-turn still does here is what it does right:
 * decoding the values of known attributes of a message our own codec has already validated
 * (turn/stun.ts scanAttributes), and building and encoding replies (MESSAGE-INTEGRITY,
 * FINGERPRINT, addresses). Its network layer, dispatcher, authentication, method handlers and
 * allocations are not used (their defects are listed where ours replace them), and nothing
 * in node-turn is patched process-wide.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:dgram';
import type { EventEmitter } from 'node:events';
import { ipBytes, type AttributeSpan, type StunHeader, type StunScan } from './stun.js';

export interface NtAddress {
  family: number;
  address: string;
  port: number;
}

export interface NtTransport {
  protocol: number;
  src: NtAddress;
  dst: NtAddress;
  socket: Socket;
  get5Tuple(): string;
  revert(): NtTransport;
}

export interface NtUser {
  username: string;
  password: string;
}

export interface NtAttribute {
  type: number;
  name: string | null;
  length: number;
  padding: number;
  value: unknown;
  read(data: Buffer): void;
}

export interface NtMessage {
  server: NtServer;
  transport: NtTransport;
  class: number;
  method: number;
  transactionID: string;
  attributes: NtAttribute[];
  useFingerprint: boolean;
  user: NtUser | null;
  reply(): NtMessage;
  getAttribute(name: string): unknown;
  getAttributes(name: string): unknown[];
  addAttribute(name: string, value?: unknown): void;
  resolve(): void;
  reject(code: number, reason: string): void;
  discard(): void;
}

export interface NtServer extends EventEmitter {
  software: string;
  realm: string;
}

export interface NtServerConfig {
  listeningIps: string[];
  listeningPort: number;
  relayIps: string[];
  externalIps: string | null;
  minPort: number;
  maxPort: number;
  maxAllocateLifetime: number;
  defaultAllocatetLifetime: number;
  authMech: 'long-term';
  realm: string;
  debugLevel: string;
  log: (...args: unknown[]) => void;
}

const require = createRequire(import.meta.url);

const NodeTurnServer = require('node-turn') as new (config: NtServerConfig) => NtServer;
const NtMessageCtor = require('node-turn/lib/message.js') as new (server: NtServer, transport: NtTransport) => NtMessage;
const NtTransportCtor = require('node-turn/lib/transport.js') as new (protocol: number, src: NtAddress, dst: NtAddress, socket: Socket) => NtTransport;
const NtAttributeCtor = require('node-turn/lib/attribute.js') as new (msg: NtMessage) => NtAttribute;
const NtUserCtor = require('node-turn/lib/user.js') as new (username: string, password: string) => NtUser;
/** node-turn's Address: parses the family from the text (its regexps only ever see addresses the socket layer or node-turn itself wrote). */
const NtAddressCtor = require('node-turn/lib/address.js') as new (address: string, port: number) => NtAddress;

/**
 * node-turn's Address for `ip`:`port` (as the socket layer writes them), an IPv6 address
 * spelt as the eight groups node-turn's encoder and socket calls expect. Its constructor
 * (lib/address.js) pads `::` with too few zero groups when more than one group precedes it
 * (`2001:db8:0:1::a` became five groups): replies to such a client went to an invalid
 * address and were lost, and XOR-MAPPED-/XOR-RELAYED-ADDRESS were encoded wrongly, so no
 * client with a global IPv6 address could use the server.
 */
export function ntAddress(ip: string, port: number): NtAddress {
  const a = new NtAddressCtor(ip, port);
  if (ip.includes(':')) {
    const b = ipBytes(ip);
    a.address = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':');
  }
  return a;
}
/**
 * The client's transport address as XOR-MAPPED-ADDRESS reports it: an IPv4 client of a
 * dual-stack (`::`) listener, which the socket layer writes as `::ffff:a.b.c.d` (RFC 4291
 * section 2.5.5.2), as the IPv4 family. Reporting the IPv6 family told the client its address
 * was IPv6: its server-reflexive candidate and the mapped address of its relay allocation
 * then named a family it has no route in. Only for what we encode: replies still go to the
 * socket's form (a udp6 socket cannot send to an IPv4 literal: EINVAL).
 */
export function mappedAddress(a: NtAddress): NtAddress {
  if (!a.address.includes(':')) return a;
  const b = ipBytes(a.address);
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped ? new NtAddressCtor(`${b[12]}.${b[13]}.${b[14]}.${b[15]}`, a.port) : a;
}
const CONSTANTS = require('node-turn/lib/constants.js') as { ATTR: Record<string, number> };
export const UDP_PROTOCOL = 0x11;

const EVEN_PORT = 0x0018;
const MESSAGE_INTEGRITY = 0x0008;
const FINGERPRINT = 0x8028;
/** Types node-turn's attribute reader decodes (lib/attribute.js); it threw on any other. */
const KNOWN = new Set(Object.values(CONSTANTS.ATTR).filter((t) => t !== MESSAGE_INTEGRITY && t !== FINGERPRINT && t !== EVEN_PORT));

/**
 * A node-turn server object, only as the context node-turn's Message needs (realm and
 * software for replies, its debug hook). Never started: we own the sockets.
 */
export function createNodeTurn(realm: string, software: string): NtServer {
  const nt = new NodeTurnServer({
    listeningIps: [],
    listeningPort: 3478,
    relayIps: [],
    externalIps: null,
    minPort: 49152,
    maxPort: 65535,
    maxAllocateLifetime: 3600,
    defaultAllocatetLifetime: 600,
    // node-turn defaults to 'none', an open relay; its authentication is not used either way.
    authMech: 'long-term',
    realm,
    debugLevel: 'OFF',
    log: () => {},
  });
  nt.software = software;
  return nt;
}

export interface DecodedRequest {
  msg: NtMessage;
  /** Unknown comprehension-required attribute types (RFC 8489 section 6.3.1.1: 420). */
  unknownRequired: number[];
}

/**
 * A node-turn Message for a datagram that passed `readHeader` and `scanAttributes`: only the
 * attributes before MESSAGE-INTEGRITY (RFC 8489 section 14.5), each handed to node-turn's
 * reader alone, as an exact slice. Replaces node-turn's Message.read, which recomputed the
 * CRC-32 or HMAC over the whole prefix at every FINGERPRINT or MESSAGE-INTEGRITY attribute (a
 * 64 KB datagram of FINGERPRINTs blocked the event loop for more than half a second) and threw
 * on unknown attribute types, dropping the message where RFC 8489 section 14 wants them
 * ignored (comprehension-optional) or answered with 420 (comprehension-required). Throws on
 * a known attribute whose value node-turn cannot read (a truncated address): the caller
 * drops the datagram (RFC 8489 section 6.3).
 */
export function decodeRequest(nt: NtServer, socket: Socket, src: { address: string; port: number }, dst: NtAddress, buf: Buffer, header: StunHeader, scan: StunScan): DecodedRequest {
  const transport = new NtTransportCtor(UDP_PROTOCOL, ntAddress(src.address, src.port), dst, socket);
  const msg = new NtMessageCtor(nt, transport);
  msg.class = header.cls;
  msg.method = header.method;
  msg.transactionID = buf.toString('hex', 8, 20);
  // node-turn adds FINGERPRINT to the reply when the request carried one (lib/message.js).
  msg.useFingerprint = scan.fingerprint >= 0;
  const unknownRequired: number[] = [];
  for (const span of scan.attributes) {
    if (span.type === EVEN_PORT) {
      msg.attributes.push(evenPort(msg, buf, span));
    } else if (KNOWN.has(span.type)) {
      const attribute = new NtAttributeCtor(msg);
      attribute.read(buf.subarray(span.offset - 4, span.offset + span.length));
      msg.attributes.push(attribute);
    } else if (span.type < 0x8000) {
      unknownRequired.push(span.type);
    }
    // Unknown comprehension-optional attributes are ignored (RFC 8489 section 14).
  }
  return { msg, unknownRequired };
}

/**
 * node-turn reads EVEN-PORT with data.readBit(32) on a plain Buffer, which throws: every
 * Allocate with EVEN-PORT was dropped (turnutils_uclient sends one). RFC 8656 section 18.8:
 * the R bit is the first bit of the value.
 */
function evenPort(msg: NtMessage, buf: Buffer, span: AttributeSpan): NtAttribute {
  const attribute = new NtAttributeCtor(msg);
  attribute.type = EVEN_PORT;
  attribute.name = 'even-port';
  attribute.length = span.length;
  attribute.padding = (4 - (span.length % 4)) % 4;
  if (span.length < 1) throw new Error('EVEN-PORT without a value');
  attribute.value = (buf[span.offset]! & 0x80) !== 0;
  return attribute;
}

/** Marks a request and its reply as authenticated by `username`: node-turn signs a reply with its user's key. */
export function setUser(msg: NtMessage, reply: NtMessage, username: string, password: string): void {
  const user = new NtUserCtor(username, password);
  msg.user = user;
  reply.user = user;
}

/**
 * A reply to an authenticated request whose error responses are signed too. RFC 8489 section
 * 9.2.4: the response to a request that passed authentication carries MESSAGE-INTEGRITY,
 * error responses included (only the 400/401/438 of failed checks go without). node-turn's
 * reject() adds ERROR-CODE and sends without it, so a client could not tell a genuine 403 or
 * 486 from a forged one. MESSAGE-INTEGRITY must follow ERROR-CODE (section 14.5: only
 * FINGERPRINT may come after it), hence the hook on addAttribute rather than an attribute
 * added beforehand.
 */
export function signErrors(reply: NtMessage): NtMessage {
  const reject = reply.reject;
  reply.reject = function signedReject(this: NtMessage, code: number, reason: string): void {
    const add = this.addAttribute;
    this.addAttribute = function addThenSign(this: NtMessage, name: string, value?: unknown): void {
      add.call(this, name, value);
      if (name === 'error-code') add.call(this, 'message-integrity');
    };
    try {
      reject.call(this, code, reason);
    } finally {
      this.addAttribute = add;
    }
  };
  return reply;
}
