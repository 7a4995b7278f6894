/** What a reconnect policy is told about the failure it must answer. */
export interface ReconnectContext {
  /** 0 for the first retry after a connection was lost (or failed to open). */
  attempt: number;
  /** ms since the connection was lost (or since `connect()` for the first one). */
  elapsedMs: number;
  /** The close code of the connection that failed (1006 when it never opened). */
  closeCode: number;
}

/** Decides when to retry: a delay in ms, or null to give up. */
export interface ReconnectPolicy {
  nextDelayMs(ctx: ReconnectContext): number | null;
}

export interface BackoffOptions {
  /** First delay cap in ms. Default 250. */
  baseMs?: number;
  /** Largest delay in ms. Default 10 000. */
  capMs?: number;
  /** Give up after this many attempts. Default 20. */
  maxAttempts?: number;
  /** Give up when the outage has lasted this long, in ms. Default 120 000. */
  maxElapsedMs?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

/**
 * Exponential backoff with full jitter: delay = random(0, min(cap, base * 2^attempt)).
 * Full jitter spreads reconnecting clients out after a server restart instead of bringing
 * them back in waves (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015).
 */
export class ExponentialBackoff implements ReconnectPolicy {
  readonly baseMs: number;
  readonly capMs: number;
  readonly maxAttempts: number;
  readonly maxElapsedMs: number;
  readonly #random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 250;
    this.capMs = opts.capMs ?? 10_000;
    this.maxAttempts = opts.maxAttempts ?? 20;
    this.maxElapsedMs = opts.maxElapsedMs ?? 120_000;
    this.#random = opts.random ?? Math.random;
    if (!(this.baseMs > 0 && this.capMs >= this.baseMs)) throw new RangeError('backoff: need 0 < baseMs <= capMs');
  }

  nextDelayMs(ctx: ReconnectContext): number | null {
    if (ctx.attempt >= this.maxAttempts || ctx.elapsedMs >= this.maxElapsedMs) return null;
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(ctx.attempt, 30));
    return Math.floor(this.#random() * ceiling);
  }
}
