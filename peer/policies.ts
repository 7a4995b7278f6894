/** The recovery and fallback policies of a remote peer, and their defaults. */

export interface RestartPolicy {
  /** Wait this long in `disconnected` before acting (ICE often recovers alone). */
  disconnectedGraceMs: number;
  /** Delay before the 2nd recovery attempt; doubles per attempt up to `maxDelayMs` (with jitter). */
  baseDelayMs: number;
  maxDelayMs: number;
  /** An attempt that has not connected after this long is followed by the next one. */
  attemptTimeoutMs: number;
  /** ICE restarts to try (when both sides support them) before rebuilding the connection. */
  iceRestarts: number;
}

export const DEFAULT_RESTART: RestartPolicy = {
  disconnectedGraceMs: 2_000,
  baseDelayMs: 500,
  maxDelayMs: 15_000,
  attemptTimeoutMs: 5_000,
  iceRestarts: 2,
};

/**
 * When to carry a peer's channels over the signaling WebSocket instead: when its ICE
 * connection fails, or is not connected `afterMs` after it started or was lost.
 */
export interface FallbackPolicy {
  afterMs: number;
}

/**
 * 5 s: longer than a healthy ICE setup takes even through TURN on a lossy network (about
 * 0.2-2 s measured in the NAT lab), short enough that a game survives a UDP-blocking network.
 */
export const DEFAULT_FALLBACK: FallbackPolicy = { afterMs: 5_000 };
