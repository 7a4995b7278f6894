/**
 * TURN quotas: allocations per user and in total (RFC 8656 section 7.2: 486 Allocation Quota
 * Reached), and a token bucket per source IP for unauthenticated requests (no valid
 * MESSAGE-INTEGRITY: 401 challenges, STUN Binding, 437/420 answers), plus a global bucket for
 * all of them. Requests beyond a bucket are dropped silently: answering would make the server
 * a reflector for spoofed sources (RFC 8656 section 21.1, RFC 8489 section 16).
 *
 * Nonces need no quota: they are stateless (an HMAC over random bytes and an expiry, see
 * TurnServer installNonces), so no request grows server state. The only per-source state is
 * the bucket table below, capped at `maxTrackedSources` entries (oldest evicted first).
 *
 * | option                          | default | meaning                                                        |
 * |---------------------------------|---------|----------------------------------------------------------------|
 * | maxAllocationsPerUser           | 32      | live allocations per username (REST: per peer credential)      |
 * | maxAllocations                  | 4096    | live allocations on the server                                 |
 * | unauthenticatedBurst            | 64      | unauthenticated requests one source IP may send at once        |
 * | unauthenticatedPerSecond        | 16      | refill rate of that per-IP bucket                              |
 * | unauthenticatedGlobalBurst      | 4096    | unauthenticated requests from all sources at once              |
 * | unauthenticatedGlobalPerSecond  | 2048    | refill rate of the global bucket                               |
 * | maxTrackedSources               | 65536   | per-IP buckets kept (least recently refilled evicted first)    |
 *
 * 32 allocations per user covers a browser peer in a full mesh room gathering relay candidates
 * on a couple of interfaces; 4096 is a quarter of the default relay port range.
 */
import { TurnError } from './errors.js';

export interface TurnQuotaOptions {
  /** Live allocations per username (default 32); beyond it Allocate gets 486. */
  maxAllocationsPerUser?: number;
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
  maxAllocations: 4096,
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

/** Counts allocations (live and being bound) per user and in total. */
export class AllocationQuota {
  private readonly perUser = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: Pick<TurnQuotas, 'maxAllocationsPerUser' | 'maxAllocations'>) {}

  /** Takes one allocation slot for `user`; false (and nothing taken) if a quota is reached. */
  acquire(user: string): boolean {
    const n = this.perUser.get(user) ?? 0;
    if (n >= this.limits.maxAllocationsPerUser || this.total >= this.limits.maxAllocations) return false;
    this.perUser.set(user, n + 1);
    this.total++;
    return true;
  }

  release(user: string): void {
    const n = this.perUser.get(user);
    if (n === undefined) return;
    if (n <= 1) this.perUser.delete(user);
    else this.perUser.set(user, n - 1);
    this.total--;
  }

  get count(): number {
    return this.total;
  }

  usedBy(user: string): number {
    return this.perUser.get(user) ?? 0;
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

  /** Per-IP buckets held (at most maxTrackedSources). */
  get trackedSources(): number {
    return this.sources.size;
  }
}
