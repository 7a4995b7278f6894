/**
 * The embedded TURN server (RFC 8656 over UDP, long-term credentials): its options, the
 * lifecycle of its sockets, and the wiring of the parts, each in a file named for its job:
 * the gate every datagram passes (gate.ts), the codec (codec.ts), authentication (auth.ts)
 * and the nonce (nonces.ts), the allocation table and lifetimes (allocations.ts), quotas and
 * caps (quotas.ts), request rate limits (rate-limits.ts), the request handlers (handlers.ts),
 * the relay hot path (data-path.ts, relay-state.ts), the clock (clock.ts), and the one seam
 * to node-turn 0.0.6 (node-turn.ts), which still decodes attribute values and encodes replies.
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Registry } from 'prom-client';
import { AllocationTable } from './allocations.js';
import type { CredentialLookup } from './auth.js';
import { type Clock, systemClock } from './clock.js';
import { peerToClient } from './data-path.js';
import { TurnError } from './errors.js';
import { Gate } from './gate.js';
import type { HandlerContext } from './handlers.js';
import { TurnCounters, TurnMetrics } from './metrics.js';
import { NodeTurn, replyAddress } from './node-turn.js';
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
  private listener: Listener | undefined;
  private listening: Promise<{ address: string; port: number }> | undefined;
  private closing: Promise<void> | undefined;
  private readonly allocations: AllocationTable;
  private readonly counters = new TurnCounters();
  private readonly handlers: HandlerContext;
  private readonly gate: Gate;

  constructor(options: TurnServerOptions) {
    if (typeof options.credentials !== 'function') {
      throw new TurnError('insecure-config', 'a credential lookup is required: the TURN server is never an open relay');
    }
    const clock = options.clock ?? systemClock;
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
    const limiter = new UnauthenticatedLimiter(this.quotas, now);
    this.policy = options.peers instanceof PeerPolicy ? options.peers : new PeerPolicy(options.peers);
    this.allocations = new AllocationTable({ minPort: o.minPort, maxPort: o.maxPort, externalAddress: o.externalAddress }, this.quotas, (socket, ip, port) => this.relayState(socket, ip, port), clock);
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
      allocated: (ip) => limiter.refundSource(ip),
    };
    this.gate = new Gate({
      realm: o.realm,
      credentials: o.credentials,
      quotas: this.quotas,
      allocations: this.allocations,
      limiter,
      nonces: new Nonces(now),
      nodeTurn: new NodeTurn(o.realm),
      handlers: this.handlers,
    });
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
    const gate = this.gate;
    socket.on('message', (buf, rinfo) => gate.onPacket(socket, dst, buf, rinfo));
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
}
