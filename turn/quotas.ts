/**
 * TURN quotas and caps: how much state one credential, one client IP and the server as a
 * whole may hold, and every limit's default. The request rate buckets that these numbers also
 * configure are in turn/rate-limits.ts.
 *
 * After authentication: allocations per user, per client IP (IPv6: per /64) and in total
 * (RFC 8656 section 7.2: 486 Allocation Quota Reached, `AllocationQuota` below), and per
 * allocation the caps: the peers one CreatePermission may name, the permission cap (live
 * permissions it holds) and the channel cap (508 Insufficient Capacity, RFC 8656 sections 9.2
 * and 11.2: the request is well formed, the server declines to hold more; 400 is kept for
 * malformed requests; `permissionCapExceeded`, `channelCapExceeded` below).
 *
 * | option                          | default | meaning                                                        |
 * |---------------------------------|---------|----------------------------------------------------------------|
 * | maxAllocationsPerUser           | 32      | live allocations per username (REST: per peer credential)      |
 * | maxAllocationsPerAddress        | 128     | live allocations per client IP (all its ports together)        |
 * | maxAllocations                  | 4096    | live allocations on the server                                 |
 * | ipv6PrefixLength                | 64      | IPv6 clients count per this prefix for the per-IP limits        |
 * | maxAttributes                   | 64      | attributes in one message; more: dropped unanswered            |
 * | maxPeersPerRequest              | 16      | XOR-PEER-ADDRESS in one CreatePermission; more: 508            |
 * | maxPermissionsPerAllocation     | 128     | live permissions (peer IPs) of one allocation; more: 508       |
 * | maxChannelsPerAllocation        | 128     | live channel bindings of one allocation; more: 508             |
 * | allocationRequestBurst          | 128     | requests one allocation's client address may send at once      |
 * | allocationRequestsPerSecond     | 32      | refill rate of that per-allocation bucket                      |
 * | unauthenticatedBurst            | 64      | other requests without a valid nonce, one source IP, at once   |
 * | unauthenticatedPerSecond        | 16      | refill rate of that per-IP bucket                              |
 * | unauthenticatedGlobalBurst      | 4096    | other requests without a valid nonce, all sources, at once     |
 * | unauthenticatedGlobalPerSecond  | 2048    | refill rate of the global bucket                               |
 * | verifiedSourceBurst             | 256     | other requests with a valid nonce, one source IP, at once      |
 * | verifiedSourcePerSecond         | 64      | refill rate of that per-IP bucket                              |
 * | verifiedGlobalBurst             | 16384   | other requests with a valid nonce, all sources, at once        |
 * | verifiedGlobalPerSecond         | 8192    | refill rate of that global bucket                              |
 * | credentialRequestBurst          | 32      | authenticated requests without an allocation, per username      |
 * | credentialRequestsPerSecond     | 8       | refill rate of that per-username bucket                        |
 * | maxTrackedSources               | 65536   | per-IP (each kind) and per-username buckets kept (LRU evicted) |
 *
 * A peer in a full mesh room (the signaling default `maxPeersPerRoom` is 32) holds an
 * RTCPeerConnection per remote peer, each with an allocation per local interface it gathers
 * relay candidates on: 32 allocations per user cover one interface for 31 remote peers, and
 * 32 authenticated Allocates at once (the credential bucket) create them in one go. Before
 * them the browser sends a Binding and an unauthenticated Allocate per allocation (62 of the
 * 64 unverified tokens of its IP); the authenticated ones then spend the verified bucket: 256
 * at once holds two browsers behind one NAT joining full rooms on two interfaces each
 * (2 x 2 x 31 = 124) twice over (438 retries after a nonce expires, retransmits), and 64/s
 * lets such a pair rejoin a full room about every second. The verified global bucket holds
 * four times `maxAllocations` at once (every client of a full server reconnecting after a
 * restart, with retries) and refills at four times the unverified one: a cap on real sources
 * that spoofed junk, which spends the unverified buckets only, cannot reach. 128 per IP
 * lets a LAN party of a dozen players share one NAT address, while 32 addresses are needed to
 * fill the 4096 (a quarter of the default relay port range). One allocation serves one remote
 * peer: it needs a permission per remote IP (host, reflexive and relayed candidates: a handful)
 * and a channel per remote candidate pair it uses, far under 128 each; browsers name one peer
 * per CreatePermission (coturn accepts a handful). 128 requests at once and 32/s cover ICE's
 * burst of CreatePermission/ChannelBind on one allocation; the steady state is a Refresh and
 * permission refreshes every few minutes. 64 attributes is twice what the largest legitimate
 * request here carries (16 peers + credentials + FINGERPRINT).
 */
import { TurnError } from './errors.js';
import type { RelayState } from './relay-state.js';
import { sourceKey } from './source-key.js';

export interface TurnQuotaOptions {
  /** Live allocations per username (default 32); beyond it Allocate gets 486. */
  maxAllocationsPerUser?: number;
  /** Live allocations per client IP (default 128); beyond it Allocate gets 486. */
  maxAllocationsPerAddress?: number;
  /**
   * IPv6 clients count per this prefix (default 64, 1-128) for the per-IP request bucket and
   * `maxAllocationsPerAddress`; IPv4-mapped addresses count as IPv4.
   */
  ipv6PrefixLength?: number;
  /** Attributes in one STUN message (default 64); a message with more is dropped unanswered. */
  maxAttributes?: number;
  /** XOR-PEER-ADDRESS attributes in one CreatePermission (default 16); more gets 508. */
  maxPeersPerRequest?: number;
  /** Live permissions per allocation (default 128); a request that would exceed it gets 508. */
  maxPermissionsPerAllocation?: number;
  /** Live channel bindings per allocation (default 128); a ChannelBind beyond it gets 508. */
  maxChannelsPerAllocation?: number;
  /** Token bucket size for requests from an allocation's client address (default 128). */
  allocationRequestBurst?: number;
  /** Refill rate of the per-allocation bucket, requests per second (default 32). */
  allocationRequestsPerSecond?: number;
  /** Live allocations in total (default 4096); beyond it Allocate gets 486. */
  maxAllocations?: number;
  /** Token bucket size for unauthenticated requests per source IP (default 64). */
  unauthenticatedBurst?: number;
  /** Refill rate of the per-IP bucket, requests per second (default 16). */
  unauthenticatedPerSecond?: number;
  /** Token bucket size for requests without a valid nonce from all sources (default 4096). */
  unauthenticatedGlobalBurst?: number;
  /** Refill rate of the global bucket, requests per second (default 2048). */
  unauthenticatedGlobalPerSecond?: number;
  /** Token bucket size for requests with a valid nonce per source IP, without an allocation (default 256). */
  verifiedSourceBurst?: number;
  /** Refill rate of that per-IP bucket, requests per second (default 64). */
  verifiedSourcePerSecond?: number;
  /** Token bucket size for requests with a valid nonce from all sources, without an allocation (default 16384). */
  verifiedGlobalBurst?: number;
  /** Refill rate of that global bucket, requests per second (default 8192). */
  verifiedGlobalPerSecond?: number;
  /** Token bucket size for authenticated requests without an allocation, per username (default 32). */
  credentialRequestBurst?: number;
  /** Refill rate of the per-username bucket, requests per second (default 8). */
  credentialRequestsPerSecond?: number;
  /** Per-IP and per-username buckets kept at most, each (default 65536); the least recently used is evicted when full. */
  maxTrackedSources?: number;
}

export type TurnQuotas = Required<TurnQuotaOptions>;

export const DEFAULT_TURN_QUOTAS: Readonly<TurnQuotas> = Object.freeze({
  maxAllocationsPerUser: 32,
  maxAllocationsPerAddress: 128,
  maxAllocations: 4096,
  ipv6PrefixLength: 64,
  maxAttributes: 64,
  maxPeersPerRequest: 16,
  maxPermissionsPerAllocation: 128,
  maxChannelsPerAllocation: 128,
  allocationRequestBurst: 128,
  allocationRequestsPerSecond: 32,
  unauthenticatedBurst: 64,
  unauthenticatedPerSecond: 16,
  unauthenticatedGlobalBurst: 4096,
  unauthenticatedGlobalPerSecond: 2048,
  verifiedSourceBurst: 256,
  verifiedSourcePerSecond: 64,
  verifiedGlobalBurst: 16384,
  verifiedGlobalPerSecond: 8192,
  credentialRequestBurst: 32,
  credentialRequestsPerSecond: 8,
  maxTrackedSources: 65536,
});

/** Fills in defaults; bad-quota on anything but positive numbers (integers for counts). */
export function resolveQuotas(options: TurnQuotaOptions | undefined): TurnQuotas {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new TurnError('bad-quota', 'quotas must be an object');
  }
  const out: TurnQuotas = { ...DEFAULT_TURN_QUOTAS };
  for (const [key, value] of Object.entries(options ?? {})) {
    if (!(key in DEFAULT_TURN_QUOTAS)) throw new TurnError('bad-quota', `unknown quota ${JSON.stringify(key)}`);
    if (value === undefined) continue;
    const rate = key.endsWith('PerSecond');
    const ok = typeof value === 'number' && Number.isFinite(value) && value > 0 && (rate || Number.isInteger(value));
    if (!ok) {
      throw new TurnError('bad-quota', `quota ${key} must be a positive ${rate ? 'number' : 'integer'}, got ${String(value)}`);
    }
    if (key === 'ipv6PrefixLength' && value > 128) throw new TurnError('bad-quota', `quota ipv6PrefixLength must be at most 128, got ${value}`);
    out[key as keyof TurnQuotas] = value;
  }
  return out;
}

/**
 * Counts allocations (live and being bound) per user, per client IP (its `sourceKey`: IPv6 per
 * /64) and in total.
 */
export class AllocationQuota {
  private readonly perUser = new Map<string, number>();
  private readonly perAddress = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: Pick<TurnQuotas, 'maxAllocationsPerUser' | 'maxAllocationsPerAddress' | 'maxAllocations' | 'ipv6PrefixLength'>) {}

  /** Takes one allocation slot for `user` at client IP `address`; false (and nothing taken) if a quota is reached. */
  acquire(user: string, address: string): boolean {
    const ip = sourceKey(address, this.limits.ipv6PrefixLength);
    const n = this.perUser.get(user) ?? 0;
    const m = this.perAddress.get(ip) ?? 0;
    if (n >= this.limits.maxAllocationsPerUser || m >= this.limits.maxAllocationsPerAddress || this.total >= this.limits.maxAllocations) return false;
    this.perUser.set(user, n + 1);
    this.perAddress.set(ip, m + 1);
    this.total++;
    return true;
  }

  release(user: string, address: string): void {
    const ip = sourceKey(address, this.limits.ipv6PrefixLength);
    const n = this.perUser.get(user);
    const m = this.perAddress.get(ip);
    if (n === undefined || m === undefined) return;
    if (n <= 1) this.perUser.delete(user);
    else this.perUser.set(user, n - 1);
    if (m <= 1) this.perAddress.delete(ip);
    else this.perAddress.set(ip, m - 1);
    this.total--;
  }

  get count(): number {
    return this.total;
  }

  usedBy(user: string): number {
    return this.perUser.get(user) ?? 0;
  }

  usedFrom(address: string): number {
    return this.perAddress.get(sourceKey(address, this.limits.ipv6PrefixLength)) ?? 0;
  }
}

type Caps = Pick<TurnQuotas, 'maxPeersPerRequest' | 'maxPermissionsPerAllocation' | 'maxChannelsPerAllocation'>;

/**
 * The permission cap of a CreatePermission naming `ips` (canonical text) on `relay`: true if
 * it names more than `maxPeersPerRequest` peers, or would leave the allocation holding more
 * than `maxPermissionsPerAllocation` live permissions. The caller answers 508 and installs
 * nothing (the request is all or nothing, RFC 8656 section 9.2).
 */
export function permissionCapExceeded(relay: RelayState, ips: readonly string[], now: number, caps: Caps): boolean {
  return ips.length > caps.maxPeersPerRequest || relay.permissionsFull(ips, now, caps.maxPermissionsPerAllocation);
}

/**
 * The channel cap of a ChannelBind of `channel` to a peer at `ip` on `relay`: true if it would
 * add a channel beyond `maxChannelsPerAllocation` or a permission beyond the permission cap
 * (a ChannelBind installs the peer's permission too). The caller answers 508.
 */
export function channelCapExceeded(relay: RelayState, channel: number, ip: string, now: number, caps: Caps): boolean {
  return relay.channelsFull(channel, now, caps.maxChannelsPerAllocation) || relay.permissionsFull([ip], now, caps.maxPermissionsPerAllocation);
}
