/**
 * The peer library's timers, injectable (as signaling/server/clock.ts is for the server) so
 * tests drive recovery, fallback and liveness on a fake clock. The very `Clock` type of the
 * server (a type only: nothing of the server reaches the browser bundle), so one fake serves
 * both (test/helpers/fake-clock.ts).
 */
import type { Clock } from '../signaling/server/clock.js';

/**
 * The global timers, looked up at each call (a test framework that replaces them after
 * import still applies): the signaling client's, one object in the bundle for both.
 */
export { systemClock } from '../signaling/client/clock.js';
export type { Clock };

/** One timer and its one owner: `start` does nothing while it runs, `stop` is idempotent. */
export interface Timer {
  readonly running: boolean;
  /** Runs `fn` once after `ms`, or every `ms` with `repeat`, unless already running. */
  start(fn: () => void, ms: number, repeat?: boolean): void;
  stop(): void;
}

export function timer(clock: Clock): Timer {
  let handle: unknown = null;
  let every = false;
  return {
    get running() {
      return handle !== null;
    },
    start(fn, ms, repeat = false) {
      if (handle !== null) return;
      every = repeat;
      handle = repeat
        ? clock.setInterval(fn, ms)
        : clock.setTimeout(() => {
            handle = null;
            fn();
          }, ms);
    },
    stop() {
      const h = handle;
      if (h === null) return;
      handle = null;
      if (every) clock.clearInterval(h);
      else clock.clearTimeout(h);
    },
  };
}
