/**
 * Recovery of a lost connection, with exponential backoff and jitter: one attempt at a time,
 * each followed by the next unless the peer is connected by `attemptTimeoutMs` after it.
 * What an attempt does (an ICE restart, a new connection, or asking the other side to
 * build one) is the peer's (peer/remote-peer.ts).
 */
import { type Clock, type Timer, timer } from './clock.js';
import type { RestartPolicy } from './policies.js';

export interface RecoveryHooks {
  /** The data channels are up again: nothing to recover. */
  connected(): boolean;
  /** Makes attempt number `attempt` (1 for the first). */
  attempt(attempt: number): Promise<void>;
}

export class Recovery {
  readonly #policy: RestartPolicy;
  readonly #hooks: RecoveryHooks;
  readonly #timer: Timer;
  #attempt = 0;
  #closed = false;

  constructor(policy: RestartPolicy, clock: Clock, hooks: RecoveryHooks) {
    this.#policy = policy;
    this.#hooks = hooks;
    this.#timer = timer(clock);
  }

  /** Schedules the next attempt `extraDelayMs` plus the backoff from now, unless one is scheduled. */
  schedule(extraDelayMs: number): void {
    if (this.#timer.running || this.#closed) return;
    const { baseDelayMs, maxDelayMs } = this.#policy;
    const backoff = this.#attempt === 0 ? 0 : Math.min(maxDelayMs, baseDelayMs * 2 ** (this.#attempt - 1));
    this.#timer.start(
      () => {
        if (!this.#hooks.connected()) void this.run();
      },
      extraDelayMs + backoff * (0.5 + Math.random() / 2),
    );
  }

  /** One attempt now; schedules the next unless the peer is connected by then. */
  run(): Promise<void> {
    this.#attempt++;
    this.#timer.stop();
    this.#timer.start(() => {
      if (!this.#hooks.connected()) this.schedule(0);
    }, this.#policy.attemptTimeoutMs);
    return this.#hooks.attempt(this.#attempt);
  }

  /** Connected: the next loss starts again from the first attempt. */
  reset(): void {
    this.#attempt = 0;
    this.#timer.stop();
  }

  close(): void {
    this.#closed = true;
    this.#timer.stop();
  }
}
