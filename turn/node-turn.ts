/**
 * The one seam between the embedded TURN server and node-turn 0.0.6 (plain JS, no types):
 * nothing else imports node-turn or holds its objects. The rest of turn/ sees the small typed
 * interface below: `NodeTurn.decode` turns a datagram our codec has validated into a
 * `TurnRequest` with typed attribute values, whose `TurnReply` builds and sends the answer.
 *
 * What node-turn still does is what it does right: decoding the values of known attributes
 * and encoding replies (MESSAGE-INTEGRITY, FINGERPRINT, addresses). Its network layer,
 * dispatcher, authentication, method handlers and allocations are not used (their defects
 * are named where ours replace them). Its defects in the parts we use are corrected here, on
 * our own objects: an Address built from eight groups (`replyAddress`), attributes read one
 * exact slice at a time (`decode`), EVEN-PORT read by us (`evenPort`), error responses
 * signed by a reply class of our own (`Reply`). Nothing in node-turn is patched.
 */

import type { Socket } from 'node:dgram';
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { type AttributeSpan, type StunHeader, type StunScan, type TransportAddress, UDP_PROTOCOL } from './codec.js';
import { ipBytes } from './ip.js';

// --- the typed interface ---------------------------------------------------------------------

/** An address as a reply encodes it (XOR-MAPPED-ADDRESS, XOR-RELAYED-ADDRESS): from `replyAddress`. */
export interface ReplyAddress {
  readonly family: number;
  readonly address: string;
  readonly port: number;
}

/** Request attribute values as decoded (RFC 8489 section 14, RFC 8656 section 18). */
export interface RequestAttributes {
  username: string;
  realm: string;
  nonce: string;
  lifetime: number;
  'requested-transport': number;
  /** EVEN-PORT's R bit (RFC 8656 section 18.8). */
  'even-port': boolean;
  'reservation-token': number;
  'channel-number': number;
  /** The peer's IP as node-turn spells it (IPv6: eight groups) and port. */
  'xor-peer-address': TransportAddress;
  data: Buffer;
}

/** Attributes a handler adds to a reply; ERROR-CODE, MESSAGE-INTEGRITY and FINGERPRINT come from the reply itself. */
export interface ReplyAttributes {
  'xor-mapped-address': ReplyAddress;
  'xor-relayed-address': ReplyAddress;
  lifetime: number;
  software: string;
  realm: string;
  nonce: string;
}

/** A request (or an indication) that passed the codec, as the handlers see it. */
export interface TurnRequest {
  readonly method: number;
  /** Hex. */
  readonly transactionId: string;
  /** The request carried FINGERPRINT: its answer carries one too (RFC 8489 section 14.7). */
  readonly fingerprint: boolean;
  /** The client's address for XOR-MAPPED-ADDRESS. */
  readonly mapped: ReplyAddress;
  /** The listening address the request arrived on. */
  readonly localAddress: string;
  /** The first attribute of that name, undefined if absent. */
  get<K extends keyof RequestAttributes>(name: K): RequestAttributes[K] | undefined;
  /** Every XOR-PEER-ADDRESS, in order. */
  peers(): TransportAddress[];
  /** A new reply to this request: its method and transaction id. */
  reply(): TurnReply;
  /** Sends a datagram built elsewhere (turn/codec.ts) to the client, from the socket the request arrived on. */
  send(datagram: Buffer): void;
}

/** The answer to one request; the first of succeed, fail and discard settles it, later calls do nothing. */
export interface TurnReply {
  add<K extends keyof ReplyAttributes>(name: K, value: ReplyAttributes[K]): void;
  /**
   * The request passed authentication as `username`: MESSAGE-INTEGRITY (`sign`, and every error
   * response) uses that user's long-term key (RFC 8489 section 9.2.2).
   */
  authenticate(username: string, password: string): void;
  /** Adds MESSAGE-INTEGRITY; nothing before `authenticate`. */
  sign(): void;
  /** Sends the success response. */
  succeed(): void;
  /** Sends an error response with ERROR-CODE `code` and `reason`, signed once authenticated. */
  fail(code: number, reason: string): void;
  /** Sends nothing. */
  discard(): void;
}

export interface DecodedRequest {
  request: TurnRequest;
  /** Unknown comprehension-required attribute types (RFC 8489 section 6.3.1.1: 420). */
  unknownRequired: number[];
}

// --- node-turn, as far as we use it ----------------------------------------------------------

interface NtTransport {
  protocol: number;
  src: ReplyAddress;
  dst: ReplyAddress;
  socket: Socket;
  revert(): NtTransport;
}

interface NtUser {
  username: string;
  password: string;
}

interface NtAttribute {
  type: number;
  name: string | null;
  length: number;
  padding: number;
  value: unknown;
  read(data: Buffer): void;
}

interface NtServer extends EventEmitter {
  realm: string;
}

interface NtMessage {
  server: NtServer;
  transport: NtTransport;
  class: number;
  method: number;
  magicCookie: number;
  transactionID: string;
  attributes: NtAttribute[];
  useFingerprint: boolean;
  user: NtUser | null;
  getAttribute(name: string): unknown;
  getAttributes(name: string): unknown[];
  addAttribute(name: string, value?: unknown): void;
  resolve(): void;
  reject(code: number, reason: string): void;
  discard(): void;
}

interface NtServerConfig {
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
const NtTransportCtor = require('node-turn/lib/transport.js') as new (protocol: number, src: ReplyAddress, dst: ReplyAddress, socket: Socket) => NtTransport;
const NtAttributeCtor = require('node-turn/lib/attribute.js') as new (msg: NtMessage) => NtAttribute;
const NtUserCtor = require('node-turn/lib/user.js') as new (username: string, password: string) => NtUser;
/** node-turn's Address: parses the family from the text (its regexps only ever see addresses the socket layer or node-turn itself wrote). */
const NtAddressCtor = require('node-turn/lib/address.js') as new (address: string, port: number) => { family: number; address: string; port: number };
const CONSTANTS = require('node-turn/lib/constants.js') as { ATTR: Record<string, number> };

const EVEN_PORT = 0x0018;
const MESSAGE_INTEGRITY = 0x0008;
const FINGERPRINT = 0x8028;
/** Types node-turn's attribute reader decodes (lib/attribute.js); it threw on any other. */
const KNOWN = new Set(Object.values(CONSTANTS.ATTR).filter((t) => t !== MESSAGE_INTEGRITY && t !== FINGERPRINT && t !== EVEN_PORT));

/**
 * node-turn's Address for `ip`:`port` (as the socket layer writes them), an IPv6 address
 * spelt as the eight groups node-turn's encoder and socket calls expect. Its constructor
 * (lib/address.js) pads `::` with too few zero groups when more than one group precedes it
 * (`2001:db8:0:1::a` became five groups): replies to such a client went to an invalid
 * address and were lost, and XOR-MAPPED-/XOR-RELAYED-ADDRESS were encoded wrongly, so no
 * client with a global IPv6 address could use the server.
 */
export function replyAddress(ip: string, port: number): ReplyAddress {
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
export function mappedAddress(a: ReplyAddress): ReplyAddress {
  if (!a.address.includes(':')) return a;
  const b = ipBytes(a.address);
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped ? new NtAddressCtor(`${b[12]}.${b[13]}.${b[14]}.${b[15]}`, a.port) : a;
}

/**
 * node-turn's Message as a reply of ours. RFC 8489 section 9.2.4: the response to a request
 * that passed authentication carries MESSAGE-INTEGRITY, error responses included (only the
 * 400/401/438 of failed checks go without, and they are sent before `authenticate`).
 * node-turn's reject() adds ERROR-CODE and sends without it, so a client could not tell a
 * genuine 403 or 486 from a forged one. MESSAGE-INTEGRITY must follow ERROR-CODE (section
 * 14.5: only FINGERPRINT may come after it), so this class adds it right after ERROR-CODE;
 * node-turn's addAttribute skips it while the reply has no user.
 */
class Reply extends NtMessageCtor implements TurnReply {
  override addAttribute(name: string, value?: unknown): void {
    super.addAttribute(name, value);
    if (name === 'error-code') super.addAttribute('message-integrity');
  }

  add<K extends keyof ReplyAttributes>(name: K, value: ReplyAttributes[K]): void {
    this.addAttribute(name, value);
  }

  authenticate(username: string, password: string): void {
    this.user = new NtUserCtor(username, password);
  }

  sign(): void {
    this.addAttribute('message-integrity');
  }

  succeed(): void {
    this.resolve();
  }

  fail(code: number, reason: string): void {
    this.reject(code, reason);
  }
}

/** A decoded request; its replies are `Reply`s, set up as node-turn's Message.reply() does. */
class Request implements TurnRequest {
  constructor(private readonly msg: NtMessage) {}

  get method(): number {
    return this.msg.method;
  }

  get transactionId(): string {
    return this.msg.transactionID;
  }

  get fingerprint(): boolean {
    return this.msg.useFingerprint;
  }

  get mapped(): ReplyAddress {
    return mappedAddress(this.msg.transport.src);
  }

  get localAddress(): string {
    return this.msg.transport.dst.address;
  }

  get<K extends keyof RequestAttributes>(name: K): RequestAttributes[K] | undefined {
    return this.msg.getAttribute(name) as RequestAttributes[K] | undefined;
  }

  peers(): TransportAddress[] {
    return this.msg.getAttributes('xor-peer-address') as TransportAddress[];
  }

  reply(): TurnReply {
    const m = this.msg;
    const reply = new Reply(m.server, m.transport.revert());
    reply.class = m.class;
    reply.method = m.method;
    reply.magicCookie = m.magicCookie;
    reply.transactionID = m.transactionID;
    reply.useFingerprint = m.useFingerprint;
    return reply;
  }

  send(datagram: Buffer): void {
    const { socket, src } = this.msg.transport;
    socket.send(datagram, src.port, src.address);
  }
}

/**
 * node-turn for one server: a node-turn server object, never started (we own the sockets),
 * only as the context its Message needs (the realm of the long-term key, its debug hook).
 */
export class NodeTurn {
  private readonly server: NtServer;

  constructor(realm: string) {
    this.server = new NodeTurnServer({
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
  }

  /**
   * The request in a datagram that passed `readHeader` and `scanAttributes` (turn/codec.ts),
   * received on `socket` (bound to `local`) from `source` (as the socket reported it): only the
   * attributes before MESSAGE-INTEGRITY (RFC 8489 section 14.5), each handed to node-turn's
   * reader alone, as an exact slice. Replaces node-turn's Message.read, which recomputed the
   * CRC-32 or HMAC over the whole prefix at every FINGERPRINT or MESSAGE-INTEGRITY attribute
   * (a 64 KB datagram of FINGERPRINTs blocked the event loop for more than half a second) and
   * threw on unknown attribute types, dropping the message where RFC 8489 section 14 wants
   * them ignored (comprehension-optional) or answered with 420 (comprehension-required).
   * Throws on a known attribute whose value node-turn cannot read (a truncated address): the
   * caller drops the datagram (RFC 8489 section 6.3).
   */
  decode(socket: Socket, local: ReplyAddress, source: TransportAddress, buf: Buffer, header: StunHeader, scan: StunScan): DecodedRequest {
    const transport = new NtTransportCtor(UDP_PROTOCOL, replyAddress(source.address, source.port), local, socket);
    const msg = new NtMessageCtor(this.server, transport);
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
    return { request: new Request(msg), unknownRequired };
  }
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
