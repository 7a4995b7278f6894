/**
 * The TURN server's time and timers, injectable so tests drive allocation lifetimes, nonce
 * expiry, permission and channel expiry and the request buckets without waiting. The same
 * shape as the signaling server's `Clock` (signaling/server/clock.ts), so one fake serves
 * both (test/helpers/fake-clock.ts); turn/ is below signaling/ and does not import it.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/**
 * Wall-clock time and Node's timers, unref'd: an allocation's lifetime never holds the process
 * open. The globals are looked up at each call, so a test framework that replaces them after
 * import (vitest's fake timers) still applies.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    return setTimeout(fn, ms).unref();
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
  setInterval(fn, ms) {
    return setInterval(fn, ms).unref();
  },
  clearInterval(handle) {
    clearInterval(handle as NodeJS.Timeout);
  },
};
