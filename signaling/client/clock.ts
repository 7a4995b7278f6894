/**
 * The signaling client's time and timers, injectable (`SignalingClientOptions.clock`) so tests
 * drive the welcome timeout, liveness, reconnect delays and the transport ladder's probes
 * without waiting. The same `Clock` shape as the server's (a type only: nothing of the
 * server reaches the browser bundle), so one fake serves both (test/helpers/fake-clock.ts).
 */
import type { Clock } from '../server/clock.js';

/** What the client uses of a `Clock`: any `Clock` fits. */
export type ClientClock = Pick<Clock, 'now' | 'setTimeout' | 'clearTimeout'>;

/**
 * The global timers, looked up at each call (a test framework that replaces them after import
 * still applies; browsers refuse `setTimeout` called with another `this` than the window).
 * Not unref'd: in Node a client waiting to reconnect keeps the process alive, as it always has.
 */
export const systemClock: ClientClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};
