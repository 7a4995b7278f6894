/**
 * One allocation's permissions and channel bindings (RFC 8656 sections 9 and 12), shaped for
 * the relay hot path: no I/O (the sockets are only carried for the server), no node-turn
 * objects.
 *
 * node-turn 0.0.6 kept them in plain objects keyed by its own address strings
 * (lib/allocation.js): every datagram from a peer built a `new Address` (two regexps) and
 * looked its channel up with `getPeerChannelNumber`, a walk over all bindings comparing
 * `toString()`s. Here a datagram's source, as the socket reports it (`rinfo.address`,
 * `rinfo.port`), finds its permission and channel with two Map lookups.
 *
 * The peer address policy is not consulted here: the server checks it once, before `permit`
 * and `bind` (403, RFC 8656 section 21.3), and the policy is immutable, so an entry created
 * for an allowed address stays allowed.
 */
import type { Socket } from 'node:dgram';
import { ipBytes } from './ip.js';

/** RFC 8656 section 9: a permission lasts 300 seconds unless refreshed. */
export const PERMISSION_MS = 300_000;
/** RFC 8656 section 12: a channel binding lasts 10 minutes unless refreshed. */
export const CHANNEL_MS = 600_000;
/**
 * At this many permissions `permit` sweeps the expired ones without channels; the threshold
 * then doubles past what is left, so sweeps stay amortized O(1) per permission.
 */
const SWEEP_AT = 64;

export interface Channel {
  readonly number: number;
  /** The peer's IP (canonical text) and port. */
  readonly address: string;
  readonly port: number;
  expiry: number;
}

export interface Permission {
  expiry: number;
  /** The peer IP's bytes, for XOR-PEER-ADDRESS in Data indications. */
  readonly ip: Buffer;
  /** Channels bound to a peer at this IP, by the peer's port. */
  readonly channels: Map<number, Channel>;
}

export class RelayState {
  /** False once the allocation is deleted; datagrams already queued are then dropped. */
  live = true;
  private readonly permissions = new Map<string, Permission>();
  private readonly channels = new Map<number, Channel>();
  private sweepAt = SWEEP_AT;

  constructor(
    /** The relay socket (to peers). */
    readonly socket: Socket,
    /** The listening socket the client reached (to the client). */
    readonly listener: Socket,
    /** The client's address as rinfo reports it, and port. */
    readonly clientAddress: string,
    readonly clientPort: number,
  ) {}

  /** Installs or refreshes the permission for `ip` (canonical text, see canonicalIp). */
  permit(ip: string, now: number): Permission {
    let p = this.permissions.get(ip);
    if (p) {
      p.expiry = now + PERMISSION_MS;
      return p;
    }
    if (this.permissions.size >= this.sweepAt) {
      this.sweep(now);
      this.sweepAt = Math.max(SWEEP_AT, 2 * this.permissions.size);
    }
    p = { expiry: now + PERMISSION_MS, ip: ipBytes(ip), channels: new Map() };
    this.permissions.set(ip, p);
    return p;
  }

  /**
   * True if permitting `ips` (canonical text) would take the live permissions past `max`: a
   * caller refuses (508). Expired entries are swept first when the table looks full, and the
   * count is read after the sweep.
   */
  permissionsFull(ips: readonly string[], now: number, max: number): boolean {
    const fresh = new Set(ips.filter((ip) => this.permission(ip, now) === undefined)).size;
    if (this.permissions.size + fresh <= max) return false;
    this.sweep(now);
    return this.permissions.size + fresh > max;
  }

  /** Permissions held, expired ones not yet swept included (the cap counts what is held). */
  get permissionCount(): number {
    return this.permissions.size;
  }

  /**
   * True if binding `number` would add a channel (it is not bound yet) and the table holds
   * `max` live bindings: a caller refuses (508). Expired bindings are swept first.
   */
  channelsFull(number: number, now: number, max: number): boolean {
    if (this.channel(number, now) !== undefined || this.channels.size < max) return false;
    this.sweep(now);
    return this.channels.size >= max;
  }

  /** The unexpired permission for `ip` (canonical text), if any. */
  permission(ip: string, now: number): Permission | undefined {
    const p = this.permissions.get(ip);
    return p !== undefined && p.expiry > now ? p : undefined;
  }

  /** The unexpired channel `number`; an expired binding is removed. */
  channel(number: number, now: number): Channel | undefined {
    const c = this.channels.get(number);
    if (c === undefined) return undefined;
    if (c.expiry > now) return c;
    this.unbind(c);
    return undefined;
  }

  /** The unexpired channel bound to the peer at `port` on the permission's IP. */
  peerChannel(p: Permission, port: number, now: number): Channel | undefined {
    const c = p.channels.get(port);
    if (c === undefined) return undefined;
    if (c.expiry > now) return c;
    this.unbind(c);
    return undefined;
  }

  /**
   * RFC 8656 section 12.2: false (400) if `number` is bound to another peer or the peer to
   * another number; expired bindings do not count.
   */
  canBind(number: number, ip: string, port: number, now: number): boolean {
    const byNumber = this.channel(number, now);
    const existing = this.permissions.get(ip);
    const byPeer = existing && this.peerChannel(existing, port, now);
    return byNumber === byPeer;
  }

  /**
   * RFC 8656 section 12.2: binds `number` to the peer or refreshes the binding, and installs or
   * refreshes the permission for the peer's IP. Call after `canBind` (returns its answer).
   */
  bind(number: number, ip: string, port: number, now: number): boolean {
    if (!this.canBind(number, ip, port, now)) return false;
    const p = this.permit(ip, now);
    const bound = this.channels.get(number);
    if (bound) {
      bound.expiry = now + CHANNEL_MS;
      return true;
    }
    const c: Channel = { number, address: ip, port, expiry: now + CHANNEL_MS };
    this.channels.set(number, c);
    p.channels.set(port, c);
    return true;
  }

  private unbind(c: Channel): void {
    this.channels.delete(c.number);
    const p = this.permissions.get(c.address);
    if (p?.channels.get(c.port) === c) p.channels.delete(c.port);
  }

  private sweep(now: number): void {
    for (const [ip, p] of this.permissions) {
      for (const c of p.channels.values()) if (c.expiry <= now) this.unbind(c);
      if (p.expiry <= now && p.channels.size === 0) this.permissions.delete(ip);
    }
  }
}
