/**
 * The embedded TURN server (RFC 8656 over UDP, long-term credentials): its options, the
 * listening socket's lifecycle and the gate every datagram passes. The jobs live in files
 * named for them: the codec (codec.ts), authentication (auth.ts) and the nonce (nonces.ts),
 * the allocation table and lifetimes (allocations.ts), quotas and caps (quotas.ts), request
 * rate limits (rate-limits.ts), the request handlers (handlers.ts), the relay hot path
 * (data-path.ts, relay-state.ts), the clock (clock.ts), and the one seam to node-turn 0.0.6
 * (node-turn.ts), which still decodes attribute values and encodes replies.
 *
 * The gate, in order, so that no datagram costs more than linear, small work before the rate
 * limit and at most one CRC-32 and one HMAC after it:
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
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Registry } from 'prom-client';
import { AllocationTable } from './allocations.js';
import { authenticate, type CredentialLookup } from './auth.js';
import { systemClock, type Clock } from './clock.js';
import { fingerprintMatches, readHeader, readSendIndication, scanAttributes, StunAttr, StunClass, StunMethod, type StunScan } from './codec.js';
import { channelDataToPeer, peerToClient, sendToPeer } from './data-path.js';
import { TurnError } from './errors.js';
import * as handlers from './handlers.js';
import { canonicalIp } from './ip.js';
import { TurnCounters, TurnMetrics } from './metrics.js';
import { NodeTurn, replyAddress, type ReplyAddress } from './node-turn.js';
import { Nonces } from './nonces.js';
import { PeerPolicy, type PeerPolicyOptions } from './policy.js';
import { resolveQuotas, type TurnQuotaOptions, type TurnQuotas } from './quotas.js';
import { UnauthenticatedLimiter } from './rate-limits.js';
import { RelayState } from './relay-state.js';
import { TransactionIdPool } from './transaction-ids.js';

export type { CredentialLookup } from './auth.js';

export interface TurnServerOptions {
  /** Address to listen on (default 127.0.0.1). A wildcard address needs `relayAddress`. */
  host?: string;
  /** UDP port (default 3478; 0 picks a free port). */
  port?: number;
  realm?: string;
  /** Long-term credential lookup; required: the server never runs as an open relay. */
  credentials: CredentialLookup;
  /** Address relay sockets bind to (default: `host`). */
  relayAddress?: string;
  /** Address advertised in XOR-RELAYED-ADDRESS for hosts behind 1:1 NAT. */
  externalAddress?: string;
  minPort?: number;
  maxPort?: number;
  /** Seconds (RFC 8656 section 3.8 default 600). */
  defaultLifetime?: number;
  maxLifetime?: number;
  /** Peer address policy; default refuses internal ranges. */
  peers?: PeerPolicy | PeerPolicyOptions;
  /** Allocation quotas, per-allocation caps and the request rate limits; defaults in turn/quotas.ts. */
  quotas?: TurnQuotaOptions;
  /** prom-client registry for the TURN metrics (turn/metrics.ts); default: a registry of its own. */
  registry?: Registry;
  /**
   * Time and timers for allocation lifetimes, nonce expiry, permission and channel expiry and
   * the request buckets (turn/clock.ts); default the system clock. For tests.
   */
  clock?: Clock;
}

/** The SOFTWARE attribute of the server's answers (RFC 8489 section 14.14). */
const SOFTWARE = 'rallypoint';

/** Low byte of the Send indication's message type 0x0016 (RFC 8656 section 18). */
const SEND_INDICATION_LOW = 0x16;

const METHOD_NAMES: Record<number, string> = {
  0x001: 'binding',
  0x003: 'allocate',
  0x004: 'refresh',
  0x008: 'create-permission',
  0x009: 'channel-bind',
};

/** Metric label for a request method; anything else is 'other' (bounded label values). */
function methodName(method: number): string {
  return METHOD_NAMES[method] ?? 'other';
}

interface Listener {
  socket: dgram.Socket;
  address: string;
  port: number;
}

export class TurnServer {
  private readonly options: Required<Omit<TurnServerOptions, 'relayAddress' | 'externalAddress' | 'peers' | 'quotas' | 'registry' | 'clock'>> &
    Pick<TurnServerOptions, 'relayAddress' | 'externalAddress'>;
  readonly policy: PeerPolicy;
  /** The limits in force (defaults filled in). */
  readonly quotas: Readonly<TurnQuotas>;
  readonly metrics: TurnMetrics;
  private readonly nodeTurn: NodeTurn;
  private listener: Listener | undefined;
  private listening: Promise<{ address: string; port: number }> | undefined;
  private closing: Promise<void> | undefined;
  private readonly clock: Clock;
  private readonly nonces: Nonces;
  private readonly allocations: AllocationTable;
  private readonly limiter: UnauthenticatedLimiter;
  private readonly counters = new TurnCounters();
  private readonly handlers: handlers.HandlerContext;

  constructor(options: TurnServerOptions) {
    if (typeof options.credentials !== 'function') {
      throw new TurnError('insecure-config', 'a credential lookup is required: the TURN server is never an open relay');
    }
    const clock = (this.clock = options.clock ?? systemClock);
    const now = (): number => clock.now();
    this.options = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 3478,
      realm: options.realm ?? 'rallypoint',
      credentials: options.credentials,
      relayAddress: options.relayAddress,
      externalAddress: options.externalAddress,
      minPort: options.minPort ?? 49152,
      maxPort: options.maxPort ?? 65535,
      defaultLifetime: options.defaultLifetime ?? 600,
      maxLifetime: options.maxLifetime ?? 3600,
    };
    const o = this.options;
    if (o.minPort < 1 || o.maxPort > 65535 || o.minPort > o.maxPort || o.defaultLifetime <= 0 || o.maxLifetime < o.defaultLifetime) {
      throw new TurnError('bad-config', 'invalid port range or lifetimes');
    }
    // Relay sockets bind to the address the request arrived on; on a wildcard listener that
    // is 0.0.0.0 and XOR-RELAYED-ADDRESS would advertise it.
    if ((o.host === '0.0.0.0' || o.host === '::') && !o.relayAddress && !o.externalAddress) {
      throw new TurnError('bad-config', `listening on ${o.host} needs relayAddress or externalAddress`);
    }
    this.quotas = Object.freeze(resolveQuotas(options.quotas));
    this.limiter = new UnauthenticatedLimiter(this.quotas, now);
    this.nonces = new Nonces(now);
    this.policy = options.peers instanceof PeerPolicy ? options.peers : new PeerPolicy(options.peers);
    this.nodeTurn = new NodeTurn(o.realm);
    this.allocations = new AllocationTable(
      { minPort: o.minPort, maxPort: o.maxPort, externalAddress: o.externalAddress },
      this.quotas,
      (socket, ip, port) => this.relayState(socket, ip, port),
      clock,
    );
    this.metrics = new TurnMetrics({ registry: options.registry, counters: this.counters, allocations: () => this.allocations.size });
    this.handlers = {
      allocations: this.allocations,
      policy: this.policy,
      quotas: this.quotas,
      counters: this.counters,
      clock,
      transactionIds: new TransactionIdPool(),
      software: SOFTWARE,
      relayAddress: o.relayAddress,
      defaultLifetime: o.defaultLifetime,
      maxLifetime: o.maxLifetime,
      // Only an Allocate that creates an allocation gives its verified per-IP token back (turn/rate-limits.ts).
      allocated: (ip) => this.limiter.refundSource(ip),
    };
  }

  get address(): { address: string; port: number } {
    if (!this.listener) throw new TurnError('closed', 'the TURN server is not listening');
    return { address: this.listener.address, port: this.listener.port };
  }

  /** Number of live allocations. */
  get allocationCount(): number {
    return this.allocations.size;
  }

  /** Binds the UDP listening socket; concurrent calls share one bind. */
  listen(): Promise<{ address: string; port: number }> {
    if (this.closing) return Promise.reject(new TurnError('closed', 'the TURN server is closed'));
    this.listening ??= this.bindListener();
    return this.listening;
  }

  private async bindListener(): Promise<{ address: string; port: number }> {
    const host = this.options.host;
    const socket = dgram.createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new TurnError('listen-failed', `cannot listen on ${host}:${this.options.port}: ${err.message}`, { cause: err }));
      socket.once('error', onError);
      socket.bind({ address: host, port: this.options.port, exclusive: true }, () => {
        socket.off('error', onError);
        resolve();
      });
    }).catch((err: unknown) => {
      socket.close();
      this.listening = undefined;
      throw err;
    });
    if (this.closing) {
      await new Promise<void>((resolve) => socket.close(() => resolve()));
      throw new TurnError('closed', 'the TURN server was closed while binding');
    }
    socket.on('error', () => {});
    const bound = socket.address();
    this.listener = { socket, address: bound.address, port: bound.port };
    const dst = replyAddress(bound.address, bound.port);
    socket.on('message', (buf, rinfo) => this.onPacket(socket, dst, buf, rinfo));
    return this.address;
  }

  /**
   * Closes the listening socket and every allocation's relay socket, those still being bound
   * included; resolves once all of them are closed, so their ports can be bound again at
   * once. Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const binding = this.listening?.catch(() => undefined);
      await this.allocations.close();
      await binding;
      const l = this.listener;
      this.listener = undefined;
      if (l) await new Promise<void>((resolve) => l.socket.close(() => resolve()));
      // A socket's 'close' event comes before libuv releases its handle (in the loop's close
      // phase; the port itself is free already): one full turn of the loop later, no handle of
      // this server remains (process.getActiveResourcesInfo), which leak checks rely on.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    })();
    return this.closing;
  }

  /** The relay state of a new allocation, its relay socket wired to the hot path. */
  private relayState(socket: dgram.Socket, ip: string, port: number): RelayState {
    const relay = new RelayState(socket, this.listener!.socket, ip, port);
    socket.on('message', (data, rinfo) => peerToClient(this.handlers, relay, data, rinfo));
    return relay;
  }

  // --- the gate --------------------------------------------------------------------------------

  private onPacket(socket: dgram.Socket, dst: ReplyAddress, buf: Buffer, rinfo: dgram.RemoteInfo): void {
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
    const auth = { realm: this.options.realm, credentials: this.options.credentials, nonces: this.nonces, refuse: this.counters.refuse.bind(this.counters), source: rinfo };
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
