/**
 * TURN quotas: what a stranger and what one credential can make the server spend.
 *
 * Before authentication: every datagram first passes `readHeader` (turn/stun.ts, 20 bytes,
 * O(1)) and a token bucket, and only then `scanAttributes` (bounded by `maxAttributes`) and at
 * most one CRC-32 and one HMAC. Requests from a client address that holds an allocation spend
 * that allocation's bucket (its owner's budget, which spoofed datagrams from other addresses
 * cannot drain); all other requests spend the bucket of their source IP and the global one,
 * whether or not they carry MESSAGE-INTEGRITY (claiming it buys nothing). A request that then
 * authenticates gets its per-IP token back, so a client making many allocations is limited by
 * the allocation quotas, not the challenge rate. Beyond a bucket, requests are dropped
 * silently: answering would make the server a reflector for spoofed sources (RFC 8656
 * section 21.1, RFC 8489 section 16).
 *
 * After authentication: allocations per user, per client IP and in total (RFC 8656 section
 * 7.2: 486 Allocation Quota Reached), and per allocation the peers one CreatePermission may
 * name, the permissions and the channels it holds (508 Insufficient Capacity, RFC 8656
 * sections 9.2 and 11.2: the request is well formed, the server declines to hold more; 400 is
 * kept for malformed requests).
 *
 * Nonces need no quota: they are stateless (an HMAC over random bytes, an expiry and the
 * client's transport address, turn/auth.ts), so no request grows server state. The only
 * per-source state is the bucket table below, capped at `maxTrackedSources` entries.
 *
 * | option                          | default | meaning                                                        |
 * |---------------------------------|---------|----------------------------------------------------------------|
 * | maxAllocationsPerUser           | 32      | live allocations per username (REST: per peer credential)      |
 * | maxAllocationsPerAddress        | 128     | live allocations per client IP (all its ports together)        |
 * | maxAllocations                  | 4096    | live allocations on the server                                 |
 * | maxAttributes                   | 64      | attributes in one message; more: dropped unanswered            |
 * | maxPeersPerRequest              | 16      | XOR-PEER-ADDRESS in one CreatePermission; more: 508            |
 * | maxPermissionsPerAllocation     | 128     | live permissions (peer IPs) of one allocation; more: 508       |
 * | maxChannelsPerAllocation        | 128     | live channel bindings of one allocation; more: 508             |
 * | allocationRequestBurst          | 128     | requests one allocation's client address may send at once      |
 * | allocationRequestsPerSecond     | 32      | refill rate of that per-allocation bucket                      |
 * | unauthenticatedBurst            | 64      | other requests one source IP may send at once                  |
 * | unauthenticatedPerSecond        | 16      | refill rate of that per-IP bucket                              |
 * | unauthenticatedGlobalBurst      | 4096    | other requests from all sources at once                        |
 * | unauthenticatedGlobalPerSecond  | 2048    | refill rate of the global bucket                               |
 * | maxTrackedSources               | 65536   | per-IP buckets kept (least recently refilled evicted first)    |
 *
 * 32 allocations per user covers a browser peer in a full mesh room gathering relay candidates
 * on a couple of interfaces; 128 per IP lets a LAN party of a dozen players share one NAT
 * address, while 32 addresses are needed to fill the 4096 (a quarter of the default relay port
 * range). A peer in a full 16-peer mesh needs a permission per remote IP (host, reflexive and
 * relayed candidates of 15 peers: well under 64) and a channel per remote candidate it uses;
 * browsers name one peer per CreatePermission (coturn accepts a handful). 128 requests at once
 * and 32/s cover ICE's burst of CreatePermission/ChannelBind for such a room; the steady state
 * is a Refresh and permission refreshes every few minutes. 64 attributes is twice what the
 * largest legitimate request here carries (16 peers + credentials + FINGERPRINT).
 */
import { TurnError } from './errors.js';

export interface TurnQuotaOptions {
  /** Live allocations per username (default 32); beyond it Allocate gets 486. */
  maxAllocationsPerUser?: number;
  /** Live allocations per client IP (default 128); beyond it Allocate gets 486. */
  maxAllocationsPerAddress?: number;
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
  /** Token bucket size for unauthenticated requests from all sources (default 4096). */
  unauthenticatedGlobalBurst?: number;
  /** Refill rate of the global bucket, requests per second (default 2048). */
  unauthenticatedGlobalPerSecond?: number;
  /** Per-IP buckets kept at most (default 65536); the oldest is evicted when full. */
  maxTrackedSources?: number;
}

export type TurnQuotas = Required<TurnQuotaOptions>;

export const DEFAULT_TURN_QUOTAS: Readonly<TurnQuotas> = Object.freeze({
  maxAllocationsPerUser: 32,
  maxAllocationsPerAddress: 128,
  maxAllocations: 4096,
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
  maxTrackedSources: 65536,
});

/** Fills in defaults; TURN_BAD_QUOTA on anything but positive numbers (integers for counts). */
export function resolveQuotas(options: TurnQuotaOptions | undefined): TurnQuotas {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new TurnError('TURN_BAD_QUOTA', 'quotas must be an object');
  }
  const out: TurnQuotas = { ...DEFAULT_TURN_QUOTAS };
  for (const [key, value] of Object.entries(options ?? {})) {
    if (!(key in DEFAULT_TURN_QUOTAS)) throw new TurnError('TURN_BAD_QUOTA', `unknown quota ${JSON.stringify(key)}`);
    if (value === undefined) continue;
    const rate = key.endsWith('PerSecond');
    const ok = typeof value === 'number' && Number.isFinite(value) && value > 0 && (rate || Number.isInteger(value));
    if (!ok) {
      throw new TurnError('TURN_BAD_QUOTA', `quota ${key} must be a positive ${rate ? 'number' : 'integer'}, got ${String(value)}`);
    }
    out[key as keyof TurnQuotas] = value;
  }
  return out;
}

/** Counts allocations (live and being bound) per user, per client IP and in total. */
export class AllocationQuota {
  private readonly perUser = new Map<string, number>();
  private readonly perAddress = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: Pick<TurnQuotas, 'maxAllocationsPerUser' | 'maxAllocationsPerAddress' | 'maxAllocations'>) {}

  /** Takes one allocation slot for `user` at client IP `ip`; false (and nothing taken) if a quota is reached. */
  acquire(user: string, ip: string): boolean {
    const n = this.perUser.get(user) ?? 0;
    const m = this.perAddress.get(ip) ?? 0;
    if (n >= this.limits.maxAllocationsPerUser || m >= this.limits.maxAllocationsPerAddress || this.total >= this.limits.maxAllocations) return false;
    this.perUser.set(user, n + 1);
    this.perAddress.set(ip, m + 1);
    this.total++;
    return true;
  }

  release(user: string, ip: string): void {
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

  usedFrom(ip: string): number {
    return this.perAddress.get(ip) ?? 0;
  }
}

interface Bucket {
  tokens: number;
  at: number;
}

function take(bucket: Bucket, now: number, burst: number, perSecond: number): boolean {
  bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
  bucket.at = now;
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

/** Token buckets for unauthenticated requests: one per source IP (bounded) and one global. */
export class UnauthenticatedLimiter {
  private readonly sources = new Map<string, Bucket>();
  private readonly global: Bucket;

  constructor(
    private readonly limits: Pick<
      TurnQuotas,
      'unauthenticatedBurst' | 'unauthenticatedPerSecond' | 'unauthenticatedGlobalBurst' | 'unauthenticatedGlobalPerSecond' | 'maxTrackedSources'
    >,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.global = { tokens: limits.unauthenticatedGlobalBurst, at: now() };
  }

  /** True if an unauthenticated request from `ip` may be processed now. */
  allow(ip: string): boolean {
    const l = this.limits;
    const now = this.now();
    let bucket = this.sources.get(ip);
    if (bucket) {
      // Map order = least recently seen first, for eviction.
      this.sources.delete(ip);
    } else {
      bucket = { tokens: l.unauthenticatedBurst, at: now };
      if (this.sources.size >= l.maxTrackedSources) {
        const oldest = this.sources.keys().next().value;
        if (oldest !== undefined) this.sources.delete(oldest);
      }
    }
    this.sources.set(ip, bucket);
    if (!take(bucket, now, l.unauthenticatedBurst, l.unauthenticatedPerSecond)) return false;
    if (!take(this.global, now, l.unauthenticatedGlobalBurst, l.unauthenticatedGlobalPerSecond)) {
      bucket.tokens += 1;
      return false;
    }
    return true;
  }

  /**
   * Gives back the token `allow(ip)` took, for a request that then authenticated: the buckets
   * stand before the HMAC, but a client's legitimate authenticated requests should not use up
   * the budget of its challenges.
   */
  refund(ip: string): void {
    const bucket = this.sources.get(ip);
    if (bucket) bucket.tokens = Math.min(this.limits.unauthenticatedBurst, bucket.tokens + 1);
    this.global.tokens = Math.min(this.limits.unauthenticatedGlobalBurst, this.global.tokens + 1);
  }

  /** Per-IP buckets held (at most maxTrackedSources). */
  get trackedSources(): number {
    return this.sources.size;
  }
}

/** One token bucket (the requests of one allocation's client address). */
export class TokenBucket {
  private readonly bucket: Bucket;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.bucket = { tokens: burst, at: now() };
  }

  take(): boolean {
    return take(this.bucket, this.now(), this.burst, this.perSecond);
  }
}
