/**
 * The liveness check of a remote peer's data channel path.
 *
 * werift reports neither `disconnected` nor `failed` when a working path goes silent: only
 * its ICE consent check, 30 s later (RFC 7675 section 5.1; CONSENT_TIMEOUT in werift's
 * iceBase.js), and a game would freeze that long. So a path from which nothing arrived
 * for `fallback.afterMs` counts as failed: rebuilt, and the peer falls back meanwhile.
 * For that to be heard both ways, each side that wrote nothing since the previous check
 * (every quarter of `afterMs`) sends a keepalive, so a side that only listens is heard by
 * the side that streams; and a side that heard nothing for half of `afterMs` sends a probe
 * the other side answers even if it never sends (a peer of an earlier version, which
 * keeps quiet while it hears us). The streaming side normally sends neither: a reliable
 * message among its unreliable ones would, when lost, hold werift's SCTP send window until
 * it is retransmitted (RFC 9260 section 6.3.1: RTO.Min, 1 s), and the runtime send gate
 * would drop game state meanwhile.
 * A check that runs more than two periods late finds this process stalled (a long task, a
 * GC pause, a loaded machine), not the path: what arrived meanwhile, keepalives included,
 * still waits unread behind the timer. It probes instead of judging; the next check judges
 * even if it is late too (what arrived during the stall was read between the two checks):
 * in a hidden tab (timers aligned to 1 s) or a process that always lags, every check is
 * late, and skipping each of them would never declare a dead path dead.
 */
import type { Channel } from './channel.js';
import { type Clock, type Timer, timer } from './clock.js';

export interface LivenessHooks {
  /** The peer is on its data channels (not on the WebSocket, not reconnecting). */
  up(): boolean;
  /** Nothing arrived for `afterMs`: the path is dead. */
  dead(): void;
}

export class Liveness {
  readonly #clock: Clock;
  readonly #channels: ReadonlyMap<string, Channel>;
  readonly #hooks: LivenessHooks;
  readonly #timer: Timer;
  /** When the data channels last delivered anything (keepalives included). */
  #lastHeard = 0;
  /** When the previous check ran (or the checks were set up). */
  #lastCheck: number;
  /** The previous check ran late and did not judge: this one must. */
  #skipped = false;
  /** Messages the channels had written at the previous check. */
  #sentSeen = 0;

  /** Checks four times per `afterMs`, not faster than every 50 ms (afterMs is not validated: 0 means "at once"). */
  constructor(afterMs: number, clock: Clock, channels: ReadonlyMap<string, Channel>, hooks: LivenessHooks) {
    this.#clock = clock;
    this.#channels = channels;
    this.#hooks = hooks;
    const every = Math.max(50, afterMs / 4);
    this.#lastCheck = clock.now();
    this.#timer = timer(clock);
    this.#timer.start(() => this.#check(afterMs, every), every, true);
  }

  /** Something arrived on the data channels, or they just opened. */
  heard(): void {
    this.#lastHeard = this.#clock.now();
  }

  #check(afterMs: number, every: number): void {
    const now = this.#clock.now();
    const late = now - this.#lastCheck > 2 * every;
    this.#lastCheck = now;
    if (!this.#hooks.up()) {
      this.#skipped = false;
      return;
    }
    const skip = late && !this.#skipped;
    this.#skipped = skip;
    const silent = now - this.#lastHeard;
    let sent = 0;
    for (const ch of this.#channels.values()) sent += ch.sent;
    const idle = sent === this.#sentSeen;
    this.#sentSeen = sent;
    if (silent > afterMs && !skip) this.#hooks.dead();
    else if (idle || silent * 2 >= afterMs) {
      for (const ch of this.#channels.values()) if (ch.ping(silent * 2 >= afterMs)) break;
    }
  }

  stop(): void {
    this.#timer.stop();
  }
}
