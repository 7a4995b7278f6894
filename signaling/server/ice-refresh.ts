/**
 * How long the ICE servers minted for a connection stay good to hand out again. One
 * credential per connection keeps join/leave from minting TURN credentials (and allocation
 * quota) without bound; but a connection lives longer than a credential, so a rejoin after
 * half its lifetime gets a fresh one.
 */
import type { IceServer } from '../protocol/index.js';

/**
 * Reused for at most this long when the credential's lifetime cannot be read (opaque
 * usernames from a custom `iceServers` function).
 */
export const ICE_SERVERS_MAX_AGE_MS = 60 * 60_000;

/**
 * Reused for at least this long (or the credential's whole remaining lifetime, if shorter),
 * so a rejoin loop cannot mint a credential per join even when half the lifetime is tiny.
 */
export const ICE_SERVERS_MIN_AGE_MS = 30_000;

/**
 * How long after minting `servers` are handed out again: half the remaining lifetime of the
 * shortest-lived REST credential among them (username `<unix expiry>:<id>`, the TURN REST
 * convention, draft-uberti-behave-turn-rest-00 §2.2), so a peer always gets at least half
 * a lifetime to use it, but at least `ICE_SERVERS_MIN_AGE_MS` (capped at that lifetime, so
 * an expired credential is never handed out); `ICE_SERVERS_MAX_AGE_MS` without such a
 * username. An "expiry" already past at mint time is not one (a custom username such as
 * `42:alice` only looks like it): it counts as opaque, or every rejoin would mint.
 * `wallNowMs` is the wall clock (REST expiries are wall-clock seconds); the result is a
 * duration, so the server measures it on its own clock.
 */
export function iceServersReuseMs(servers: readonly IceServer[], wallNowMs: number): number {
  let shortest = Infinity;
  for (const server of servers) {
    const m = /^(\d{1,12}):/.exec(server.username ?? '');
    if (!m) continue;
    const left = Number(m[1]) * 1000 - wallNowMs;
    if (left > 0) shortest = Math.min(shortest, left);
  }
  if (shortest === Infinity) return ICE_SERVERS_MAX_AGE_MS;
  return Math.max(shortest / 2, Math.min(ICE_SERVERS_MIN_AGE_MS, shortest));
}
