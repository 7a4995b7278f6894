/**
 * The signaling client's time and timers, injectable (`SignalingClientOptions.clock`) so tests
 * drive the welcome timeout, liveness, reconnect delays and the transport ladder's probes
 * without waiting. The same `Clock` shape as the server's (a type only: nothing of the
 * server reaches the browser bundle), so one fake serves both (test/helpers/fake-clock.ts).
 */
import type { Clock } from '../server/clock.js';

/** What the client uses of a `Clock`: any `Clock` fits. */
export type ClientClock = Pick<Clock, 'now' | 'setTimeout' | 'clearTimeout'>;

type Handle = ReturnType<typeof setTimeout>;

/**
 * The global timers, looked up at each call: a test framework that replaces them after
 * import (vitest's fake timers) still applies, and browsers refuse `setTimeout` called
 * with another `this` than the window. Not unref'd: in Node a client waiting to reconnect
 * keeps the process alive, as it always has. The peer library uses this one too
 * (peer/clock.ts re-exports it).
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as Handle),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as Handle),
};
