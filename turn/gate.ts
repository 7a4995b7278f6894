/**
 * The gate every datagram on the TURN server's listening socket passes, in order, so that no
 * datagram costs more than linear, small work before the rate limit and at most one CRC-32
 * and one HMAC after it:
 * 1. ChannelData and Send indications from a client holding an allocation: the hot path.
 * 2. `readHeader` (20 bytes): STUN bits, magic cookie, length + 20 = datagram length.
 * 3. The token bucket of an allocation, for requests from its client address. Indications
 *    other than Send, and Send from an address without an allocation, are dropped here; so
 *    are responses.
 * 4. `scanAttributes`: layout, at most `maxAttributes` attributes, FINGERPRINT only last,
 *    nothing after MESSAGE-INTEGRITY (RFC 8489 sections 14.5 and 14.7).
 * 5. The nonce (one HMAC-SHA256 over ~60 bytes, if the request has MESSAGE-INTEGRITY), then,
 *    for a request from an address without an allocation, the buckets of its source IP (IPv6:
 *    its /64) and the global one: the verified pair if the nonce was issued to this source
 *    (it got our 401 there, so it is real and spoofed floods cannot starve it), else the
 *    unverified pair (turn/rate-limits.ts). The nonce has to be known to pick the pair; the scan
 *    and the HMAC-SHA256 before the bucket cost no more than what a spoofed flood from many
 *    addresses (each with a fresh per-IP bucket) already made the server do.
 * 6. FINGERPRINT (one CRC-32), decoding of the attributes before MESSAGE-INTEGRITY (node-turn,
 *    one exact slice each), 420, then authentication (one HMAC-SHA1), the per-username bucket
 *    for requests without an allocation, and the handler.
 */
import type dgram from 'node:dgram';
import type { AllocationTable } from './allocations.js';
import { authenticate, type CredentialLookup } from './auth.js';
import { fingerprintMatches, readHeader, readSendIndication, StunAttr, StunClass, StunMethod, type StunScan, scanAttributes } from './codec.js';
import { channelDataToPeer, sendToPeer } from './data-path.js';
import * as handlers from './handlers.js';
import { canonicalIp } from './ip.js';
import type { TurnCounters } from './metrics.js';
import type { NodeTurn, ReplyAddress } from './node-turn.js';
import type { Nonces } from './nonces.js';
import type { TurnQuotas } from './quotas.js';
import type { UnauthenticatedLimiter } from './rate-limits.js';

/** Low byte of the Send indication's message type 0x0016 (RFC 8656 section 18). */
const SEND_INDICATION_LOW = 0x16;

const METHOD_NAMES: Record<number, string> = {
  1: 'binding',
  3: 'allocate',
  4: 'refresh',
  8: 'create-permission',
  9: 'channel-bind',
};

/** Metric label for a request method; anything else is 'other' (bounded label values). */
function methodName(method: number): string {
  return METHOD_NAMES[method] ?? 'other';
}

export interface GateOptions {
  realm: string;
  credentials: CredentialLookup;
  quotas: Readonly<TurnQuotas>;
  allocations: AllocationTable;
  limiter: UnauthenticatedLimiter;
  nonces: Nonces;
  nodeTurn: NodeTurn;
  /** The handlers' context, also the hot path's (turn/data-path.ts). */
  handlers: handlers.HandlerContext;
}

export class Gate {
  private readonly realm: string;
  private readonly credentials: CredentialLookup;
  private readonly quotas: Readonly<TurnQuotas>;
  private readonly allocations: AllocationTable;
  private readonly limiter: UnauthenticatedLimiter;
  private readonly nonces: Nonces;
  private readonly nodeTurn: NodeTurn;
  private readonly handlers: handlers.HandlerContext;
  private readonly counters: TurnCounters;

  constructor(o: GateOptions) {
    this.realm = o.realm;
    this.credentials = o.credentials;
    this.quotas = o.quotas;
    this.allocations = o.allocations;
    this.limiter = o.limiter;
    this.nonces = o.nonces;
    this.nodeTurn = o.nodeTurn;
    this.handlers = o.handlers;
    this.counters = o.handlers.counters;
  }

  /** Every datagram on the listening `socket` (bound to `dst`). */
  onPacket(socket: dgram.Socket, dst: ReplyAddress, buf: Buffer, rinfo: dgram.RemoteInfo): void {
    if (buf.length < 4) return;
    try {
      const first = buf[0]! & 0xc0;
      if (first === 0x40) {
        // Client ChannelData (RFC 8656 section 12.4, first bits 01); node-turn's reader
        // dropped it.
        const allocation = this.allocations.at(rinfo.address, rinfo.port);
        if (allocation) channelDataToPeer(this.handlers, allocation.relay, buf);
        return;
      }
      if (first !== 0) return;
      if (buf[1] === SEND_INDICATION_LOW && buf[0] === 0) {
        const allocation = this.allocations.at(rinfo.address, rinfo.port);
        if (!allocation) return;
        const send = readSendIndication(buf);
        if (send === 'drop') return;
        if (send !== 'other') {
          const ip = send.family === 4 ? send.address : canonicalIp(send.address);
          if (ip !== undefined) sendToPeer(this.handlers, allocation.relay, ip, send.port, send.data);
          return;
        }
      }
      this.onStun(socket, dst, buf, rinfo);
    } catch {
      // malformed packet: drop it (RFC 8489 section 6.3)
    }
  }

  private onStun(socket: dgram.Socket, dst: ReplyAddress, buf: Buffer, rinfo: dgram.RemoteInfo): void {
    const header = readHeader(buf);
    if (!header) return;
    const allocation = this.allocations.at(rinfo.address, rinfo.port);
    if (header.cls === StunClass.indication) {
      // Indications are never authenticated: only Send, only on an allocation (RFC 8656
      // section 11.2; node-turn discarded the others too).
      if (!allocation || header.method !== StunMethod.send) return;
    } else if (header.cls !== StunClass.request) {
      return;
    } else if (allocation && !allocation.requests.take()) {
      return this.counters.refuse('rate-limited');
    }
    const scan = scanAttributes(buf, this.quotas.maxAttributes);
    if (typeof scan === 'string') return this.counters.refuse('malformed');
    const nonceValid = header.cls === StunClass.request && this.nonceValid(buf, scan, rinfo);
    if (header.cls === StunClass.request && !allocation && !this.limiter.allow(rinfo.address, nonceValid)) {
      return this.counters.refuse('rate-limited');
    }
    // RFC 8489 section 7.3: a message with a wrong FINGERPRINT is discarded.
    if (scan.fingerprint >= 0 && !fingerprintMatches(buf, scan.fingerprint)) return this.counters.refuse('malformed');
    const { request, unknownRequired } = this.nodeTurn.decode(socket, dst, rinfo, buf, header, scan);
    if (header.cls === StunClass.indication) {
      // RFC 8489 section 6.3.2: an indication with unknown comprehension-required attributes is discarded.
      if (unknownRequired.length === 0) handlers.sendIndication(this.handlers, allocation!, request);
      return;
    }
    this.counters.request(methodName(header.method));
    if (unknownRequired.length > 0) {
      this.counters.refuse('unknown-attribute');
      return handlers.rejectUnknown(request, unknownRequired);
    }
    if (header.method === StunMethod.binding) return handlers.binding(request);
    // RFC 8656 section 5: requests other than Allocate need the allocation of their 5-tuple.
    if (header.method !== StunMethod.allocate && !allocation) return request.reply().fail(437, 'Allocation Mismatch');
    const reply = request.reply();
    const auth = { realm: this.realm, credentials: this.credentials, nonces: this.nonces, refuse: this.counters.refuse.bind(this.counters), source: rinfo };
    const username = authenticate(auth, request, reply, buf, scan.integrity, nonceValid, allocation?.username);
    if (username === undefined) return;
    // A credential buys no extra rate: without an allocation it spends the verified per-IP
    // token taken above (given back only if an allocation is created) and its username's bucket.
    if (!allocation && !this.limiter.allowCredential(username)) return this.counters.refuse('rate-limited');
    switch (header.method) {
      case StunMethod.allocate:
        return handlers.allocate(this.handlers, request, reply, allocation, rinfo.address, rinfo.port, username);
      case StunMethod.refresh:
        return handlers.refresh(this.handlers, allocation!, request, reply);
      case StunMethod.createPermission:
        return handlers.createPermission(this.handlers, allocation!, request, reply);
      case StunMethod.channelBind:
        return handlers.channelBind(this.handlers, allocation!, request, reply);
      default:
        // node-turn emitted an event nobody listened to: no answer.
        return;
    }
  }

  /**
   * True if the request carries MESSAGE-INTEGRITY and, before it, a NONCE this server issued
   * to the request's source IP and port (the first NONCE, as node-turn's getAttribute reads it).
   */
  private nonceValid(buf: Buffer, scan: StunScan, rinfo: dgram.RemoteInfo): boolean {
    if (scan.integrity < 0) return false;
    const span = scan.attributes.find((a) => a.type === StunAttr.nonce);
    return span !== undefined && this.nonces.check(buf.toString('latin1', span.offset, span.offset + span.length), rinfo.address, rinfo.port);
  }
}
