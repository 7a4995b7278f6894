/**
 * The TURN server's time and timers, injectable so tests drive allocation lifetimes, nonce
 * expiry, permission and channel expiry and the request buckets without waiting. The same
 * `Clock` serves the signaling server (signaling/server/clock.ts re-exports it), so one fake
 * drives both (test/helpers/fake-clock.ts).
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
 * Wall-clock time and the platform's timers, unref'd where they can be (Node): an allocation's
 * lifetime never holds the process open. The globals are looked up at each call, so a test
 * framework that replaces them after import (vitest's fake timers) still applies. Browser-safe:
 * the signaling server and client and the peer library use this one too (turn/ is the lowest
 * layer, so the one definition lives here).
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms) as { unref?: () => void };
    t.unref?.();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms) as { unref?: () => void };
    t.unref?.();
    return t;
  },
  clearInterval(handle) {
    clearInterval(handle as ReturnType<typeof setInterval>);
  },
};
