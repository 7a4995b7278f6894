/**
 * The timers the server uses, injectable so tests can drive heartbeats and grace periods: the
 * one `Clock` of the project, defined in the lowest layer (turn/clock.ts).
 */
export { type Clock, systemClock } from '../../turn/clock.js';
