/**
 * Token bucket: `rate` tokens per second, at most `burst` stored. Used for the
 * per-connection message rate; lazily refilled from the clock, so it owns no timer.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes `cost` tokens (one by default); false, taking none, when fewer are left. */
  take(now: number, cost = 1): boolean {
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.rate);
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }

  /** Gives back tokens taken for something that did not happen after all. */
  refund(cost = 1): void {
    this.tokens = Math.min(this.burst, this.tokens + cost);
  }
}

/**
 * Counts misbehaviour with a decay of one strike per second, so an occasional mistake is
 * forgiven but a stream of them crosses the threshold.
 */
export class StrikeCounter {
  private strikes = 0;
  private last: number;

  constructor(
    private readonly threshold: number,
    now: number,
  ) {
    this.last = now;
  }

  /** Adds a strike; true when the threshold is now exceeded. */
  add(now: number): boolean {
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.strikes = Math.max(0, this.strikes - elapsed) + 1;
    return this.strikes > this.threshold;
  }
}
