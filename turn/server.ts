/**
 * The embedded TURN server: node-turn 0.0.6 with its defects fixed. We own the UDP listening
 * sockets (node-turn's Network is never started) and replace the broken method handlers on
 * this server's node-turn instance; the only process-wide change is a patch of node-turn's
 * attribute reader so unknown attributes no longer throw (see patchAttributeReader).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { TurnError } from './errors.js';
import {
  NodeTurnServer,
  NtAddressCtor,
  NtAllocationCtor,
  NtAttributeCtor,
  NtMessageCtor,
  NtTransportCtor,
  UDP_PROTOCOL,
  type NtAddress,
  type NtAllocation,
  type NtAttribute,
  type NtMessage,
  type NtServer,
} from './node-turn.js';
import type { Registry } from 'prom-client';
import { TurnCounters, TurnMetrics, type RefusalReason } from './metrics.js';
import { PeerPolicy, type PeerPolicyOptions } from './policy.js';
import { AllocationQuota, resolveQuotas, UnauthenticatedLimiter, type TurnQuotaOptions, type TurnQuotas } from './quotas.js';
import { dataIndicationHead, encode, PADDING, readSendIndication, StunAttr, StunClass } from './stun.js';
import { TransactionIdPool } from './transaction-ids.js';
import { canonicalIp, RelayState } from './relay-state.js';

/** Returns the password for a username, or undefined if the user is unknown or expired. */
export type CredentialLookup = (username: string) => string | undefined;

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
  /** Allocation quotas and the unauthenticated request rate limit; defaults in turn/quotas.ts. */
  quotas?: TurnQuotaOptions;
  /** prom-client registry for the TURN metrics (turn/metrics.ts); default: a registry of its own. */
  registry?: Registry;
}

const NONCE_TTL_MS = 3_600_000;
const CLASS_REQUEST = 0;
const EVEN_PORT = 0x0018;
const BIND_ATTEMPTS = 64;
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

let attributeReaderPatched = false;

/**
 * node-turn lib/attribute.js `read` throws 'Invalid Attribute type' for any attribute it does
 * not know, and lib/network.js then drops the whole message. RFC 8489 section 14: unknown
 * comprehension-optional attributes (0x8000-0xFFFF) MUST be ignored, unknown
 * comprehension-required ones (0x0000-0x7FFF) get a 420 (section 6.3.1). We keep the raw value
 * and mark the attribute unknown; the server then answers 420 or ignores it.
 */
function patchAttributeReader(): void {
  if (attributeReaderPatched) return;
  attributeReaderPatched = true;
  const proto = NtAttributeCtor.prototype;
  const original = proto.read;
  proto.read = function read(this: NtAttribute, data: Buffer): void {
    // node-turn reads EVEN-PORT with data.readBit(32), but message.js hands attributes a
    // plain Buffer slice, so every Allocate with EVEN-PORT threw and was dropped
    // (turnutils_uclient sends one). RFC 8656 section 18.8: the R bit is the first bit.
    if (data.length >= 5 && data.readUInt16BE(0) === EVEN_PORT) {
      this.type = EVEN_PORT;
      this.length = data.readUInt16BE(2);
      this.padding = (4 - (this.length % 4)) % 4;
      this.name = 'even-port';
      this.value = (data[4]! & 0x80) !== 0;
      return;
    }
    try {
      original.call(this, data);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('Invalid Attribute type')) throw err;
      this.value = Buffer.from(data.subarray(4, 4 + this.length));
      this.name = 'unknown';
      this.unknown = true;
    }
  };
}

/**
 * These handlers run only for requests that passed authentication, and RFC 8489 section
 * 9.2.4 says the response to such a request carries MESSAGE-INTEGRITY, error responses
 * included (only the 400/401/438 of failed checks go without, and node-turn's
 * lib/authentification.js sends those before we are called). node-turn's reject() adds
 * ERROR-CODE and sends without it, so a client could not tell a genuine 403 or 486 from a
 * forged one. MESSAGE-INTEGRITY must follow ERROR-CODE (section 14.5: only FINGERPRINT may
 * come after it), hence the hook on addAttribute rather than an attribute added beforehand.
 */
function signErrors(reply: NtMessage): NtMessage {
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

interface Listener {
  socket: dgram.Socket;
  address: string;
  port: number;
}

export class TurnServer {
  private readonly options: Required<Omit<TurnServerOptions, 'relayAddress' | 'externalAddress' | 'peers' | 'quotas' | 'registry'>> &
    Pick<TurnServerOptions, 'relayAddress' | 'externalAddress'>;
  readonly policy: PeerPolicy;
  private readonly nt: NtServer;
  private listener: Listener | undefined;
  private listening: Promise<{ address: string; port: number }> | undefined;
  private closed = false;
  private readonly nonceKey = randomBytes(32);
  private readonly transactionIds = new TransactionIdPool();
  private readonly allocating = new Set<string>();
  /**
   * Permissions and channels of each allocation (turn/relay-state.ts); node-turn's own
   * `permissions` and `channelBindings` are not used, and it never expired channels.
   */
  private readonly relays = new WeakMap<NtAllocation, RelayState>();
  /**
   * Live allocations by the client's address (as rinfo reports it) and port, for client
   * ChannelData: node-turn's lookup needed a new Address (regexps), a Transport and the
   * 5-tuple string per datagram. One listening socket, so address and port identify the
   * 5-tuple.
   */
  private readonly byClient = new Map<string, Map<number, RelayState>>();
  /** The limits in force (defaults filled in). */
  readonly quotas: Readonly<TurnQuotas>;
  private readonly allocationQuota: AllocationQuota;
  /** Allocations holding a slot of `allocationQuota`, released once on delete. */
  private readonly quotaHolders = new WeakSet<NtAllocation>();
  private readonly limiter: UnauthenticatedLimiter;
  private readonly counters = new TurnCounters();
  readonly metrics: TurnMetrics;

  constructor(options: TurnServerOptions) {
    if (typeof options.credentials !== 'function') {
      throw new TurnError('TURN_INSECURE_CONFIG', 'a credential lookup is required: the TURN server is never an open relay');
    }
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
      throw new TurnError('TURN_BAD_CONFIG', 'invalid port range or lifetimes');
    }
    // node-turn binds relay sockets to the address the request arrived on; on a wildcard
    // listener that is 0.0.0.0 and XOR-RELAYED-ADDRESS would advertise it.
    if ((o.host === '0.0.0.0' || o.host === '::') && !o.relayAddress && !o.externalAddress) {
      throw new TurnError('TURN_BAD_CONFIG', `listening on ${o.host} needs relayAddress or externalAddress`);
    }
    this.quotas = Object.freeze(resolveQuotas(options.quotas));
    this.allocationQuota = new AllocationQuota(this.quotas);
    this.limiter = new UnauthenticatedLimiter(this.quotas);
    this.metrics = new TurnMetrics({ registry: options.registry, counters: this.counters, allocations: () => this.allocationCount });
    this.policy = options.peers instanceof PeerPolicy ? options.peers : new PeerPolicy(options.peers);
    patchAttributeReader();
    this.nt = new NodeTurnServer({
      listeningIps: [o.host],
      listeningPort: o.port === 0 ? 3478 : o.port,
      relayIps: o.relayAddress ? [o.relayAddress] : [],
      externalIps: o.externalAddress ?? null,
      minPort: o.minPort,
      maxPort: o.maxPort,
      maxAllocateLifetime: o.maxLifetime,
      defaultAllocatetLifetime: o.defaultLifetime,
      // node-turn defaults to 'none', an open relay.
      authMech: 'long-term',
      realm: o.realm,
      debugLevel: 'OFF',
      log: () => {},
    });
    this.nt.software = 'rallypoint';
    this.installCredentials();
    this.installNonces();
    this.installAuthCounting();
    this.installHandlers();
  }

  get address(): { address: string; port: number } {
    if (!this.listener) throw new TurnError('TURN_CLOSED', 'the TURN server is not listening');
    return { address: this.listener.address, port: this.listener.port };
  }

  /** Number of live allocations. */
  get allocationCount(): number {
    return Object.values(this.nt.allocations).filter((a) => a !== undefined).length;
  }

  /** Binds the UDP listening socket; concurrent calls share one bind. */
  listen(): Promise<{ address: string; port: number }> {
    if (this.closed) return Promise.reject(new TurnError('TURN_CLOSED', 'the TURN server is closed'));
    this.listening ??= this.bindListener();
    return this.listening;
  }

  private async bindListener(): Promise<{ address: string; port: number }> {
    const host = this.options.host;
    const socket = dgram.createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new TurnError('TURN_LISTEN_FAILED', `cannot listen on ${host}:${this.options.port}: ${err.message}`, { cause: err }));
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
    if (this.closed) {
      socket.close();
      throw new TurnError('TURN_CLOSED', 'the TURN server was closed while binding');
    }
    socket.on('error', () => {});
    const bound = socket.address();
    this.listener = { socket, address: bound.address, port: bound.port };
    const dst = new NtAddressCtor(bound.address, bound.port);
    socket.on('message', (buf, rinfo) => this.onPacket(socket, dst, buf, rinfo));
    return this.address;
  }

  /** Closes the listening socket and every allocation's relay sockets. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const allocation of Object.values(this.nt.allocations)) {
      if (allocation) this.deleteAllocation(allocation);
    }
    const l = this.listener;
    this.listener = undefined;
    if (l) await new Promise<void>((resolve) => l.socket.close(() => resolve()));
  }

  // --- packets -------------------------------------------------------------------------------

  private onPacket(socket: dgram.Socket, dst: NtAddress, buf: Buffer, rinfo: dgram.RemoteInfo): void {
    if (buf.length < 4) return;
    try {
      const first = buf[0]! & 0xc0;
      if (first === 0x40) {
        // node-turn lib/message.js read() returns false for anything whose first two bits
        // are not 00, so client ChannelData (RFC 8656 section 12.4, first bits 01) was
        // dropped. We relay it here.
        const relay = this.byClient.get(rinfo.address)?.get(rinfo.port);
        if (relay) this.onChannelData(relay, buf);
        return;
      }
      if (first !== 0) return;
      if (buf[1] === SEND_INDICATION_LOW && buf[0] === 0) {
        const relay = this.byClient.get(rinfo.address)?.get(rinfo.port);
        const send = relay ? readSendIndication(buf) : 'other';
        if (send === 'drop') return;
        if (send !== 'other') {
          const ip = send.family === 4 ? send.address : canonicalIp(send.address);
          if (ip !== undefined) this.relayToPeer(relay!, ip, send.port, send.data);
          return;
        }
      }
      const src = new NtAddressCtor(rinfo.address, rinfo.port);
      const transport = new NtTransportCtor(UDP_PROTOCOL, src, dst, socket);
      const msg = new NtMessageCtor(this.nt, transport);
      if (!msg.read(buf)) return;
      this.onMessage(msg);
    } catch {
      // malformed packet: drop it (RFC 8489 section 6.3)
    }
  }

  /** RFC 8656 section 12.6: client ChannelData to the channel's peer. */
  private onChannelData(relay: RelayState, buf: Buffer): void {
    const length = buf.readUInt16BE(2);
    if (length > buf.length - 4) return;
    const now = Date.now();
    const channel = relay.channel(buf.readUInt16BE(0), now);
    // No peer policy check per packet: see sendIndication.
    if (!channel || !relay.permission(channel.address, now)) return this.counters.refuse('no-permission');
    relay.socket.send(buf.subarray(4, 4 + length), channel.port, channel.address);
    this.counters.toPeer(length);
  }

  private onMessage(msg: NtMessage): void {
    if (msg.class === CLASS_REQUEST) {
      // Requests without valid MESSAGE-INTEGRITY (node-turn's reader set its value to false,
      // or it is absent) are rate limited per source IP and dropped silently beyond it.
      const integrity = msg.getAttribute('message-integrity');
      if ((integrity === undefined || integrity === false) && !this.limiter.allow(msg.transport.src.address)) {
        return this.counters.refuse('rate-limited');
      }
      this.counters.request(methodName(msg.method));
    }
    const unknown = msg.attributes.filter((a) => a.unknown === true);
    if (unknown.length > 0) {
      const required = unknown.map((a) => a.type).filter((t) => t < 0x8000);
      if (required.length > 0) {
        // RFC 8489 section 6.3.1.1: a request with unknown comprehension-required attributes
        // gets 420 with UNKNOWN-ATTRIBUTES; an indication is discarded (section 6.3.2).
        if (msg.class === CLASS_REQUEST) {
          this.counters.refuse('unknown-attribute');
          this.reject420(msg, required);
        }
        return;
      }
      // Comprehension-optional: ignored (RFC 8489 section 14).
      msg.attributes = msg.attributes.filter((a) => a.unknown !== true);
    }
    this.nt.emit('message', msg);
  }

  private reject420(msg: NtMessage, types: number[]): void {
    const list = Buffer.alloc(types.length * 2);
    types.forEach((t, i) => list.writeUInt16BE(t, i * 2));
    const reason = Buffer.from('Unknown Attribute');
    const code = Buffer.concat([Buffer.from([0, 0, 4, 20]), reason]);
    const out = encode(
      {
        method: msg.method,
        cls: StunClass.error,
        transactionId: Buffer.from(msg.transactionID, 'hex'),
        attributes: [
          { type: StunAttr.errorCode, value: code },
          { type: StunAttr.unknownAttributes, value: list },
        ],
      },
      { fingerprint: msg.useFingerprint },
    );
    msg.transport.socket.send(out, msg.transport.src.port, msg.transport.src.address);
  }

  // --- credentials and nonces ------------------------------------------------------------------

  /**
   * node-turn reads `authentification.credentials[username]` on every request (lib/message.js
   * for MESSAGE-INTEGRITY, lib/authentification.js for the 401), so a Proxy serves ephemeral
   * credentials (RFC 8489 section 9.2, long-term mechanism) through the lookup.
   */
  private installCredentials(): void {
    const lookup = this.options.credentials;
    this.nt.authentification.credentials = new Proxy<Record<string, string | undefined>>(
      {},
      {
        get: (_target, prop) => (typeof prop === 'string' ? lookup(prop) : undefined),
        has: (_target, prop) => typeof prop === 'string' && lookup(prop) !== undefined,
        set: () => false,
      },
    );
  }

  /**
   * node-turn lib/authentification.js generateNonce uses Math.random and keeps every nonce in
   * a map with a one-hour timer each (holding the process open; any spoofed request grows it).
   * RFC 8489 section 9.2: nonces must be unguessable. Ours are stateless: 8 random bytes, the
   * expiry, and an HMAC of both under a per-server key.
   */
  private installNonces(): void {
    const auth = this.nt.authentification;
    const mac = (body: string): string => createHmac('sha256', this.nonceKey).update(body).digest('hex').slice(0, 32);
    auth.generateNonce = () => {
      const body = `${randomBytes(8).toString('hex')}${Math.floor((Date.now() + NONCE_TTL_MS) / 1000).toString(16).padStart(10, '0')}`;
      return body + mac(body);
    };
    auth.checkNonce = (nonce: string) => {
      if (typeof nonce !== 'string' || !/^[0-9a-f]{58}$/.test(nonce)) return false;
      const body = nonce.slice(0, 26);
      const given = Buffer.from(nonce.slice(26), 'hex');
      if (!timingSafeEqual(given, Buffer.from(mac(body), 'hex'))) return false;
      return parseInt(body.slice(16), 16) * 1000 > Date.now();
    };
  }

  /**
   * Counts authentication refusals (node-turn lib/authentification.js longTerm calls back with
   * an Error named after the answer). The 401 challenge to a request without
   * MESSAGE-INTEGRITY is the normal start of a session and is not counted.
   */
  private installAuthCounting(): void {
    const auth = this.nt.authentification as unknown as {
      auth(msg: NtMessage, cb: (err: Error | null, reply?: NtMessage) => void): void;
    };
    const original = auth.auth.bind(auth);
    const reasons: Record<string, RefusalReason> = {
      Unauthorized: 'unauthorized',
      'Stale Nonce': 'stale-nonce',
      'Bad Request': 'bad-request',
      'Wrong Credentials': 'wrong-credentials',
    };
    auth.auth = (msg, cb) =>
      original(msg, (err, reply) => {
        if (err) {
          const reason = reasons[err.message];
          if (reason && !(reason === 'unauthorized' && msg.getAttribute('message-integrity') === undefined)) this.counters.refuse(reason);
        }
        cb(err, reply);
      });
  }

  // --- handlers --------------------------------------------------------------------------------

  private installHandlers(): void {
    this.nt.allocate.allocate = (msg, reply) => this.allocate(msg, signErrors(reply));
    this.nt.refresh.refresh = (msg, reply) => this.refresh(msg, signErrors(reply));
    this.nt.createPermission.createPermission = (msg, reply) => this.createPermission(msg, signErrors(reply));
    this.nt.channelBind.channelBind = (msg, reply) => this.channelBind(msg, signErrors(reply));
    this.nt.send.send = (msg) => this.sendIndication(msg);
  }

  /**
   * RFC 8656 section 7.2. Replaces node-turn's allocate: it read the LIFETIME attribute under
   * the misspelt name 'liftetime' (lib/methods/allocate.js), so a requested lifetime was
   * ignored; its retransmission path called allocation.update() with no lifetime, which armed
   * a NaN timer and deleted the allocation at once.
   */
  private allocate(msg: NtMessage, reply: NtMessage): void {
    // node-turn's dispatcher (lib/server.js) never looks up the allocation for Allocate
    // requests, so its 437 / retransmission branch was dead and a second Allocate on the same
    // 5-tuple replaced the first allocation, leaking its relay socket (RFC 8656 section 7.2).
    const fiveTuple = msg.transport.get5Tuple();
    const existing = this.nt.allocations[fiveTuple];
    if (existing) {
      if (existing.transactionID === msg.transactionID) return this.allocateSuccess(existing, reply);
      return reply.reject(437, 'Allocation Mismatch');
    }
    const transport = msg.getAttribute('requested-transport');
    if (transport === undefined) return reply.reject(400, 'Bad Request');
    if (transport !== UDP_PROTOCOL) return reply.reject(442, 'Unsupported Transport Protocol');
    // RFC 8656 section 7.2: reservations (RESERVATION-TOKEN, EVEN-PORT with R=1) are not
    // offered: 508. EVEN-PORT with R=0 gets an even relay port.
    const evenPort = msg.getAttribute('even-port');
    if (msg.getAttribute('reservation-token') !== undefined || evenPort === true) {
      return reply.reject(508, 'Insufficient Capacity');
    }
    if (this.closed) return reply.reject(508, 'Insufficient Capacity');
    // A retransmission that arrives while the relay port is being bound is dropped (the
    // client retransmits again and gets the stored answer); node-turn built a second
    // allocation on the same 5-tuple and leaked the first one's socket.
    if (this.allocating.has(fiveTuple)) return reply.discard();
    // RFC 8656 section 7.2: 486 when the user's or the server's allocation quota is reached.
    // The slot is taken before the relay port is bound and given back if that fails.
    const user = msg.user?.username ?? '';
    if (!this.allocationQuota.acquire(user)) {
      this.counters.refuse('quota');
      return reply.reject(486, 'Allocation Quota Reached');
    }
    this.allocating.add(fiveTuple);
    this.bindRelay(this.options.relayAddress ?? msg.transport.dst.address, evenPort === false).then(
      (sockets) => {
        this.allocating.delete(fiveTuple);
        if (this.closed) {
          this.allocationQuota.release(user);
          for (const s of sockets) s.close();
          return reply.reject(508, 'Insufficient Capacity');
        }
        let allocation: NtAllocation;
        try {
          allocation = new NtAllocationCtor(msg, sockets, this.initialLifetime(msg.getAttribute('lifetime')));
        } catch {
          this.allocationQuota.release(user);
          for (const s of sockets) s.close();
          return reply.reject(500, 'Server Error');
        }
        this.quotaHolders.add(allocation);
        this.adopt(allocation);
        msg.allocation = allocation;
        this.allocateSuccess(allocation, reply);
      },
      () => {
        this.allocating.delete(fiveTuple);
        this.allocationQuota.release(user);
        reply.reject(508, 'Insufficient Capacity');
      },
    );
  }

  /**
   * Binds a relay socket on a random port in [minPort, maxPort] (RFC 6056 style), retrying on
   * collisions. Replaces node-turn's allocateUdp, which re-bound a socket after a failed bind.
   */
  private async bindRelay(address: string, even: boolean): Promise<dgram.Socket[]> {
    const { minPort, maxPort } = this.options;
    for (let i = 0; i < BIND_ATTEMPTS; i++) {
      let port = minPort + (randomBytes(4).readUInt32BE(0) % (maxPort - minPort + 1));
      if (even && port % 2 === 1) port = port + 1 <= maxPort ? port + 1 : port - 1;
      if (even && (port % 2 === 1 || port < minPort)) continue;
      const socket = dgram.createSocket(isIPv6(address) ? 'udp6' : 'udp4');
      const ok = await new Promise<boolean>((resolve) => {
        socket.once('error', () => resolve(false));
        socket.bind({ address, port, exclusive: true }, () => resolve(true));
      });
      if (ok) return [socket];
      try {
        socket.close();
      } catch {
        // not running
      }
    }
    throw new Error('no relay port available');
  }

  private allocateSuccess(allocation: NtAllocation, reply: NtMessage): void {
    reply.addAttribute('xor-relayed-address', allocation.relayedTransportAddress);
    reply.addAttribute('lifetime', Math.max(0, Math.round((allocation.timeToExpiry - Date.now()) / 1000)));
    reply.addAttribute('xor-mapped-address', allocation.mappedAddress);
    reply.addAttribute('software', this.nt.software);
    reply.addAttribute('message-integrity');
    reply.resolve();
  }

  /** RFC 8656 sections 7.2 and 7.3: min(requested, max), but never below the default. */
  private initialLifetime(requested: unknown): number {
    const o = this.options;
    if (typeof requested !== 'number') return o.defaultLifetime;
    return Math.max(o.defaultLifetime, Math.min(requested, o.maxLifetime));
  }

  /**
   * Takes over an allocation node-turn built: node-turn's expiry timer only removed it from
   * the map (lib/allocation.js), leaving the relay sockets open and forwarding; its update()
   * armed NaN timers. Its relay socket listener also stripped a 4-byte header from any peer
   * datagram that happened to look like ChannelData. We replace all three.
   */
  private adopt(allocation: NtAllocation): void {
    clearTimeout(allocation.timer);
    allocation.timer = undefined;
    allocation.update = (lifetime?: number) => this.setLifetime(allocation, lifetime ?? this.options.defaultLifetime);
    this.setLifetime(allocation, allocation.lifetime);
    const client = allocation.transport.dst;
    const relay = new RelayState(allocation.sockets[0]!, allocation.transport.socket, canonicalIp(client.address) ?? client.address, client.port);
    this.relays.set(allocation, relay);
    let ports = this.byClient.get(relay.clientAddress);
    if (!ports) this.byClient.set(relay.clientAddress, (ports = new Map()));
    ports.set(relay.clientPort, relay);
    for (const socket of allocation.sockets) {
      socket.removeAllListeners('message');
      socket.removeAllListeners('error');
      socket.on('error', () => {});
      socket.on('message', (data, rinfo) => this.onPeerData(relay, data, rinfo));
    }
  }

  private setLifetime(allocation: NtAllocation, seconds: number): void {
    clearTimeout(allocation.timer);
    allocation.lifetime = seconds;
    allocation.timeToExpiry = Date.now() + seconds * 1000;
    allocation.timer = setTimeout(() => this.deleteAllocation(allocation), seconds * 1000);
    allocation.timer.unref();
  }

  private deleteAllocation(allocation: NtAllocation): void {
    clearTimeout(allocation.timer);
    allocation.timer = undefined;
    if (this.nt.allocations[allocation.fiveTuple] === allocation) delete this.nt.allocations[allocation.fiveTuple];
    const relay = this.relays.get(allocation);
    if (relay) {
      relay.live = false;
      const ports = this.byClient.get(relay.clientAddress);
      if (ports?.get(relay.clientPort) === relay) ports.delete(relay.clientPort);
      if (ports?.size === 0) this.byClient.delete(relay.clientAddress);
    }
    if (this.quotaHolders.delete(allocation)) this.allocationQuota.release(allocation.user?.username ?? '');
    for (const socket of allocation.sockets) {
      try {
        socket.close();
      } catch {
        // already closed
      }
    }
  }

  /**
   * RFC 8656 section 11.3 (a datagram from a peer; Data indication) and 12.7 (ChannelData
   * when a channel is bound to the peer).
   */
  private onPeerData(relay: RelayState, data: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!relay.live) return;
    const now = Date.now();
    const permission = relay.permission(rinfo.address, now);
    if (!permission) return this.counters.refuse('no-permission');
    this.counters.toClient(data.length);
    const pad = (4 - (data.length % 4)) % 4;
    const channel = relay.peerChannel(permission, rinfo.port, now);
    if (channel) {
      // ChannelData as a list of buffers: one sendmsg, the payload not copied (it was, by
      // Buffer.concat). Still padded to 4 bytes as before: optional over UDP (RFC 8656
      // section 12.5), kept so the wire does not change.
      const header = Buffer.allocUnsafe(4);
      header.writeUInt16BE(channel.number, 0);
      header.writeUInt16BE(data.length, 2);
      relay.listener.send(pad === 0 ? [header, data] : [header, data, PADDING[pad]!], relay.clientPort, relay.clientAddress);
      return;
    }
    // Built and sent synchronously: node-turn's message.data() took the transaction id from
    // the async crypto.randomBytes and reordered the indications (turn/transaction-ids.ts).
    const head = dataIndicationHead(permission.ip, rinfo.port, data.length, this.transactionIds);
    relay.listener.send(pad === 0 ? [head, data] : [head, data, PADDING[pad]!], relay.clientPort, relay.clientAddress);
  }

  /**
   * RFC 8656 section 7.3. node-turn lib/methods/refresh.js read `server.defaultLifetime` and
   * `server.maxAllocateTimeout`, which do not exist: the reply said LIFETIME=0 and the NaN
   * timer deleted the allocation at once.
   */
  private refresh(msg: NtMessage, reply: NtMessage): void {
    const allocation = msg.allocation;
    if (!allocation) return reply.reject(437, 'Allocation Mismatch');
    const requested = msg.getAttribute('lifetime');
    let lifetime: number;
    if (requested === 0) {
      this.deleteAllocation(allocation);
      lifetime = 0;
    } else {
      lifetime = this.initialLifetime(requested);
      this.setLifetime(allocation, lifetime);
    }
    reply.addAttribute('lifetime', lifetime);
    reply.addAttribute('software', this.nt.software);
    reply.addAttribute('message-integrity');
    reply.resolve();
  }

  /** RFC 8656 section 9.2, with the peer address policy (403, section 21.3). */
  private createPermission(msg: NtMessage, reply: NtMessage): void {
    const allocation = msg.allocation;
    if (!allocation) return reply.reject(437, 'Allocation Mismatch');
    const relay = this.relays.get(allocation);
    const peers = (msg.getAttributes('xor-peer-address') as (NtAddress | undefined)[]).map((p) => p && canonicalIp(p.address));
    if (!relay || peers.length === 0 || peers.some((ip) => ip === undefined)) return reply.reject(400, 'Bad Request');
    if (peers.some((ip) => !this.policy.allows(ip!))) {
      this.counters.refuse('forbidden-peer');
      return reply.reject(403, 'Forbidden');
    }
    const now = Date.now();
    for (const ip of peers) relay.permit(ip!, now);
    reply.addAttribute('software', this.nt.software);
    reply.addAttribute('message-integrity');
    reply.resolve();
  }

  /**
   * RFC 8656 section 11.2. node-turn lib/methods/channelBind.js resolved without
   * MESSAGE-INTEGRITY (RFC 8489 section 9.2.4: responses to authenticated requests carry it,
   * clients such as werift drop the reply) and never refused a peer (403).
   */
  private channelBind(msg: NtMessage, reply: NtMessage): void {
    const allocation = msg.allocation;
    if (!allocation) return reply.reject(437, 'Allocation Mismatch');
    const relay = this.relays.get(allocation);
    const channel = msg.getAttribute('channel-number');
    const peer = msg.getAttribute('xor-peer-address') as NtAddress | undefined;
    const ip = peer && canonicalIp(peer.address);
    // RFC 8656 section 12 narrows channels to 0x4000-0x4FFF, but RFC 5766 clients (coturn's
    // turnutils_uclient among them) use up to 0x7FFE: accept the RFC 5766 range.
    if (!relay || typeof channel !== 'number' || !peer || ip === undefined || channel < 0x4000 || channel > 0x7ffe) {
      return reply.reject(400, 'Bad Request');
    }
    const now = Date.now();
    if (!relay.canBind(channel, ip, peer.port, now)) return reply.reject(400, 'Bad Request');
    if (!this.policy.allows(ip)) {
      this.counters.refuse('forbidden-peer');
      return reply.reject(403, 'Forbidden');
    }
    relay.bind(channel, ip, peer.port, now);
    reply.addAttribute('software', this.nt.software);
    reply.addAttribute('message-integrity');
    reply.resolve();
  }

  /** RFC 8656 section 11.2; Send to a peer without permission is dropped (a refused peer never gets one, section 21.3). */
  private sendIndication(msg: NtMessage): void {
    const allocation = msg.allocation;
    const dst = msg.getAttribute('xor-peer-address') as NtAddress | undefined;
    const data = msg.getAttribute('data');
    const relay = allocation && this.relays.get(allocation);
    const ip = dst && canonicalIp(dst.address);
    if (!relay || !dst || ip === undefined || !Buffer.isBuffer(data)) return;
    this.relayToPeer(relay, ip, dst.port, data);
  }

  /**
   * RFC 8656 section 11.2: the data of a Send indication to the peer, if permitted. Client
   * Send indications come here from the fast path in onPacket (turn/stun.ts
   * readSendIndication), and the unusual ones through node-turn's parser and sendIndication.
   */
  private relayToPeer(relay: RelayState, ip: string, port: number, data: Buffer): void {
    // The peer policy is checked once, when CreatePermission or ChannelBind installs the
    // permission (403 otherwise), not per packet: it cost 0.9-4.3 µs a packet (BENCHMARKS.md,
    // "where the time goes", "What changed" 2). A permission exists only for an allowed address,
    // and PeerPolicy is immutable, so this stays true for the permission's lifetime.
    if (!relay.permission(ip, Date.now())) return this.counters.refuse('no-permission');
    relay.socket.send(data, port, ip);
    this.counters.toPeer(data.length);
  }
}
