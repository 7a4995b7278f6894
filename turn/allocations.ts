/**
 * The allocation table of the embedded TURN server (RFC 8656 section 7): allocations by the
 * client's transport address, their relay sockets, their lifetimes (on the server's clock,
 * turn/clock.ts) and the allocation quotas (turn/quotas.ts). node-turn's
 * lib/allocation.js is not used: its expiry timer only removed an allocation from the map,
 * leaving the relay socket open and forwarding, its update() armed NaN timers, and its relay
 * socket listener stripped a 4-byte header from any peer datagram that looked like
 * ChannelData.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Clock } from './clock.js';
import { type ReplyAddress, replyAddress } from './node-turn.js';
import { AllocationQuota, type TurnQuotas } from './quotas.js';
import { TokenBucket } from './rate-limits.js';
import type { RelayState } from './relay-state.js';

const BIND_ATTEMPTS = 64;

export interface Allocation {
  readonly username: string;
  /** The Allocate's transaction id (hex), to answer its retransmissions (RFC 8656 section 7.2). */
  readonly transactionId: string;
  readonly relay: RelayState;
  /** XOR-RELAYED-ADDRESS: the relay socket's address, or the external address (1:1 NAT). */
  readonly relayed: ReplyAddress;
  /** XOR-MAPPED-ADDRESS: the client's address as the server saw it. */
  readonly mapped: ReplyAddress;
  /** Requests from the client's transport address (quotas.ts allocationRequestBurst). */
  readonly requests: TokenBucket;
  /** Milliseconds on the server's clock. */
  expiresAt: number;
  /** The lifetime timer (the clock's handle). */
  timer: unknown;
}

export interface AllocationTableOptions {
  minPort: number;
  maxPort: number;
  externalAddress?: string | undefined;
}

export type AllocateRefusal = 'quota' | 'no-port' | 'closed';

export class AllocationTable {
  /**
   * Live allocations by the client's address (as rinfo reports it) and port: one listening
   * socket, so address and port identify the 5-tuple. Two Map lookups per datagram on the
   * relay path (node-turn built a new Address with regexps, a Transport and the 5-tuple string).
   */
  private readonly byClient = new Map<string, Map<number, Allocation>>();
  /** Client transport addresses whose relay port is being bound. */
  private readonly pending = new Set<string>();
  /** Relay sockets being bound, and closes under way, for close() to wait on. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly quota: AllocationQuota;
  private count = 0;
  private closed = false;

  constructor(
    private readonly options: AllocationTableOptions,
    private readonly quotas: Readonly<TurnQuotas>,
    private readonly makeRelay: (socket: dgram.Socket, clientIp: string, clientPort: number) => RelayState,
    private readonly clock: Clock,
  ) {
    this.quota = new AllocationQuota(quotas);
  }

  get size(): number {
    return this.count;
  }

  /** The allocation of the client at `ip`:`port` (rinfo form), if any. */
  at(ip: string, port: number): Allocation | undefined {
    return this.byClient.get(ip)?.get(port);
  }

  isPending(ip: string, port: number): boolean {
    return this.pending.has(`${ip}|${port}`);
  }

  /**
   * Creates an allocation for the client at `ip`:`port` (rinfo form; `mapped` is the same
   * address as node-turn encodes it) (RFC 8656 section 7.2): takes a quota
   * slot (per user, per client IP, in total), binds a relay socket on `relayAddress`, arms the
   * lifetime timer. The slot is taken before the port is bound and given back if that fails.
   */
  create(ip: string, port: number, mapped: ReplyAddress, username: string, transactionId: string, relayAddress: string, even: boolean, lifetime: number): Promise<Allocation | AllocateRefusal> {
    if (this.closed) return Promise.resolve('closed');
    if (!this.quota.acquire(username, ip)) return Promise.resolve('quota');
    // Tracked until the relay socket is either in the table or closed, for close().
    const creating = this.bindAndAdd(ip, port, mapped, username, transactionId, relayAddress, even, lifetime);
    this.inFlight.add(creating);
    return creating.finally(() => this.inFlight.delete(creating));
  }

  private async bindAndAdd(
    ip: string,
    port: number,
    mapped: ReplyAddress,
    username: string,
    transactionId: string,
    relayAddress: string,
    even: boolean,
    lifetime: number,
  ): Promise<Allocation | AllocateRefusal> {
    const key = `${ip}|${port}`;
    this.pending.add(key);
    let socket: dgram.Socket;
    try {
      socket = await this.bindRelay(relayAddress, even);
    } catch {
      this.quota.release(username, ip);
      return 'no-port';
    } finally {
      this.pending.delete(key);
    }
    if (this.closed) {
      this.quota.release(username, ip);
      await this.closeSocket(socket);
      return 'closed';
    }
    const bound = socket.address();
    const allocation: Allocation = {
      username,
      transactionId,
      relay: this.makeRelay(socket, ip, port),
      relayed: replyAddress(this.options.externalAddress ?? bound.address, bound.port),
      mapped,
      requests: new TokenBucket(this.quotas.allocationRequestsPerSecond, this.quotas.allocationRequestBurst, () => this.clock.now()),
      expiresAt: 0,
      timer: undefined,
    };
    let ports = this.byClient.get(ip);
    if (!ports) {
      ports = new Map();
      this.byClient.set(ip, ports);
    }
    ports.set(port, allocation);
    this.count++;
    this.setLifetime(allocation, lifetime);
    return allocation;
  }

  /** Sets the allocation to expire `seconds` from now, replacing its timer (RFC 8656 sections 7.2 and 7.3). */
  setLifetime(allocation: Allocation, seconds: number): void {
    this.clock.clearTimeout(allocation.timer);
    allocation.expiresAt = this.clock.now() + seconds * 1000;
    allocation.timer = this.clock.setTimeout(() => void this.delete(allocation), seconds * 1000);
  }

  /** Removes the allocation and closes its relay socket; resolves once the socket is closed. Idempotent. */
  delete(allocation: Allocation): Promise<void> {
    this.clock.clearTimeout(allocation.timer);
    allocation.timer = undefined;
    const relay = allocation.relay;
    if (!relay.live) return Promise.resolve();
    relay.live = false;
    const ports = this.byClient.get(relay.clientAddress);
    if (ports?.get(relay.clientPort) === allocation) {
      ports.delete(relay.clientPort);
      if (ports.size === 0) this.byClient.delete(relay.clientAddress);
      this.count--;
    }
    this.quota.release(allocation.username, relay.clientAddress);
    const closing = this.closeSocket(relay.socket);
    this.inFlight.add(closing);
    return closing.finally(() => this.inFlight.delete(closing));
  }

  /**
   * Deletes every allocation and resolves once every relay socket, including those still being
   * bound, is closed: the ports can be bound again at once.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const ports of [...this.byClient.values()]) for (const a of [...ports.values()]) void this.delete(a);
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Binds a relay socket on a random port in [minPort, maxPort] (RFC 6056 style), retrying on
   * collisions. Replaces node-turn's allocateUdp, which re-bound a socket after a failed bind.
   */
  private async bindRelay(address: string, even: boolean): Promise<dgram.Socket> {
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
      if (ok) {
        socket.removeAllListeners('error');
        socket.on('error', () => {});
        return socket;
      }
      await this.closeSocket(socket);
    }
    throw new Error('no relay port available');
  }

  private closeSocket(socket: dgram.Socket): Promise<void> {
    return new Promise<void>((resolve) => {
      try {
        socket.close(() => resolve());
      } catch {
        resolve(); // not running (a failed bind) or already closed
      }
    });
  }
}
