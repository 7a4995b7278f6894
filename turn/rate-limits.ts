/**
 * TURN request rate limits: the token buckets a request spends before the server does more
 * than constant work for it (the options and defaults are in turn/quotas.ts).
 *
 * Every datagram first passes `readHeader` (turn/codec.ts, 20 bytes, O(1)), then (from an allocation's address, after its bucket) `scanAttributes` (bounded by
 * `maxAttributes`) and at most one nonce check (an HMAC-SHA256 over ~60 bytes), which picks
 * the buckets below, and after them at most one CRC-32 and one HMAC-SHA1. The scan and the
 * nonce check come before the per-IP bucket of an address without an allocation because the
 * nonce decides which bucket applies; a spoofed flood from many addresses (each with a fresh
 * bucket) made the server do them anyway.
 * - Requests from a client address that holds an allocation spend that allocation's bucket
 *   (its owner's budget, which spoofed datagrams from other addresses cannot drain).
 * - Other requests that carry a valid nonce spend the buckets of verified sources: one per
 *   source IP (IPv6: its /64) and one global. A valid nonce is bound to the source's IP and
 *   port (turn/nonces.ts): the source received our 401 there, so it is not spoofed, and
 *   datagrams from spoofed sources (which spend the unverified buckets below) cannot starve
 *   it. Its own buckets are larger, since a browser joining a full room sends its 31
 *   authenticated Allocates right after the 31 Bindings and 31 unauthenticated Allocates that
 *   spent most of the unverified per-IP bucket; the global one still caps what real sources
 *   (say many /64s of one attacker) make the server spend in total.
 * - All other requests (no valid nonce) spend the unverified bucket of their source IP and
 *   the unverified global bucket (it exists for spoofed floods, which per-IP buckets cannot
 *   stop).
 * - Only an Allocate that creates an allocation gets its verified per-IP token back, so a
 *   client making many allocations is limited by the allocation quotas, while a request that
 *   authenticates and fails (442, 486, ...) costs a token like any other.
 * - Requests that authenticated without an allocation also spend their username's bucket
 *   (after the HMAC, so a stranger naming a victim's username cannot drain it): a credential
 *   used from many addresses, or failing in a loop, is still limited.
 * Beyond a bucket, requests are dropped silently: answering would make the server a reflector
 * for spoofed sources (RFC 8656 section 21.1, RFC 8489 section 16).
 *
 * Nonces need no bucket table of their own: they are stateless (turn/nonces.ts). The only
 * per-source state is the bucket tables below, each capped at `maxTrackedSources` entries.
 * Time comes from the server's clock (turn/clock.ts), so tests refill buckets without waiting.
 */
import { systemClock } from './clock.js';
import type { TurnQuotas } from './quotas.js';
import { sourceKey } from './source-key.js';

interface Bucket {
  tokens: number;
  at: number;
}

/** Refills `bucket` (`rate` tokens per second, at most `burst`) and takes a token; false if none is left. */
function take(bucket: Bucket, now: number, rate: number, burst: number): boolean {
  bucket.tokens = Math.min(burst, bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * rate);
  bucket.at = now;
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

/** Token buckets by key, at most `max` of them: the least recently used is evicted when full. */
class BucketTable {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly max: number,
  ) {}

  take(key: string, now: number): boolean {
    let bucket = this.buckets.get(key);
    if (bucket) {
      // Map order = least recently used first, for eviction.
      this.buckets.delete(key);
    } else {
      bucket = { tokens: this.burst, at: now };
      if (this.buckets.size >= this.max) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    }
    this.buckets.set(key, bucket);
    return take(bucket, now, this.rate, this.burst);
  }

  refund(key: string): void {
    const bucket = this.buckets.get(key);
    if (bucket) bucket.tokens = Math.min(this.burst, bucket.tokens + 1);
  }

  get size(): number {
    return this.buckets.size;
  }
}

/**
 * The request buckets of clients without an allocation (see the top of this file): per source
 * IP (IPv6 per /64) and global, one pair for requests without a valid nonce and one for
 * requests with one, and per username after authentication.
 */
export class UnauthenticatedLimiter {
  private readonly sources: BucketTable;
  private readonly verifiedSources: BucketTable;
  private readonly users: BucketTable;
  private readonly global: TokenBucket;
  private readonly verifiedGlobal: TokenBucket;

  constructor(
    private readonly limits: Pick<
      TurnQuotas,
      | 'unauthenticatedBurst'
      | 'unauthenticatedPerSecond'
      | 'unauthenticatedGlobalBurst'
      | 'unauthenticatedGlobalPerSecond'
      | 'verifiedSourceBurst'
      | 'verifiedSourcePerSecond'
      | 'verifiedGlobalBurst'
      | 'verifiedGlobalPerSecond'
      | 'credentialRequestBurst'
      | 'credentialRequestsPerSecond'
      | 'maxTrackedSources'
      | 'ipv6PrefixLength'
    >,
    private readonly now: () => number = systemClock.now,
  ) {
    this.sources = new BucketTable(limits.unauthenticatedPerSecond, limits.unauthenticatedBurst, limits.maxTrackedSources);
    this.verifiedSources = new BucketTable(limits.verifiedSourcePerSecond, limits.verifiedSourceBurst, limits.maxTrackedSources);
    this.users = new BucketTable(limits.credentialRequestsPerSecond, limits.credentialRequestBurst, limits.maxTrackedSources);
    this.global = new TokenBucket(limits.unauthenticatedGlobalPerSecond, limits.unauthenticatedGlobalBurst, now);
    this.verifiedGlobal = new TokenBucket(limits.verifiedGlobalPerSecond, limits.verifiedGlobalBurst, now);
  }

  /**
   * Takes a token of the source IP `address` (as the socket reports it) and one of the global
   * bucket, from the verified pair if `verified` (the request's nonce was issued to its source);
   * false, and nothing taken, if either is empty.
   */
  allow(address: string, verified: boolean): boolean {
    const key = sourceKey(address, this.limits.ipv6PrefixLength);
    const table = verified ? this.verifiedSources : this.sources;
    if (!table.take(key, this.now())) return false;
    if ((verified ? this.verifiedGlobal : this.global).take()) return true;
    table.refund(key);
    return false;
  }

  /**
   * Gives back the source's verified token: the request created an allocation (limited by the
   * allocation quotas instead). Only a request with a valid nonce can create one.
   */
  refundSource(address: string): void {
    this.verifiedSources.refund(sourceKey(address, this.limits.ipv6PrefixLength));
  }

  /** Takes a token of `username`'s bucket, for a request that authenticated without an allocation. */
  allowCredential(username: string): boolean {
    return this.users.take(username, this.now());
  }

  /** Per-IP buckets held, both kinds (each at most maxTrackedSources). */
  get trackedSources(): number {
    return this.sources.size + this.verifiedSources.size;
  }

  /** Per-username buckets held (at most maxTrackedSources). */
  get trackedCredentials(): number {
    return this.users.size;
  }
}

/** One token bucket: `rate` tokens per second, at most `burst` stored (signaling/server/token-bucket.ts has the same order). */
export class TokenBucket {
  private readonly bucket: Bucket;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = systemClock.now,
  ) {
    this.bucket = { tokens: burst, at: now() };
  }

  take(): boolean {
    return take(this.bucket, this.now(), this.rate, this.burst);
  }
}
