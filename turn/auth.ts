/**
 * Long-term credential authentication (RFC 8489 section 9.2) for the embedded TURN server:
 * the order of checks, the challenges (401, 438 with a fresh nonce from turn/nonces.ts) and
 * the key that signs the answer. Replaces node-turn's lib/authentification.js.
 */

import { integrityMatches, longTermKey } from './codec.js';
import type { RefusalReason } from './metrics.js';
import type { TurnReply, TurnRequest } from './node-turn.js';
import type { Nonces } from './nonces.js';

/** Returns the password for a username, or undefined if the user is unknown or expired. */
export type CredentialLookup = (username: string) => string | undefined;

export interface AuthContext {
  realm: string;
  credentials: CredentialLookup;
  nonces: Nonces;
  /** Counts a refusal (turn/metrics.ts). */
  refuse(reason: RefusalReason): void;
  /**
   * The request's source as the socket reported it (rinfo): nonces are issued and checked
   * for this form (node-turn spells IPv6 differently).
   */
  source: { address: string; port: number };
}

/**
 * RFC 8489 section 9.2.4, in node-turn's order of checks: the username of a request that
 * passes, after marking `reply` authenticated (its MESSAGE-INTEGRITY uses that user's key), or
 * undefined after answering it. `integrity` is the offset of MESSAGE-INTEGRITY in `buf`
 * (turn/codec.ts scanAttributes), -1 if absent; the HMAC is computed at most once, after the
 * rate limit. `nonceValid`: the request's NONCE passed `Nonces.check` for its source (the
 * server's gate checked it once, to choose the rate limit). `owner` is the username of the
 * allocation on the request's 5-tuple, if any.
 */
export function authenticate(ctx: AuthContext, request: TurnRequest, reply: TurnReply, buf: Buffer, integrity: number, nonceValid: boolean, owner: string | undefined): string | undefined {
  const { address, port } = ctx.source;
  const challenge = (code: number, reason: string): undefined => {
    reply.add('realm', ctx.realm);
    reply.add('nonce', ctx.nonces.issue(address, port));
    reply.fail(code, reason);
    return undefined;
  };
  // The first 401 of a session is its normal start: not counted.
  if (integrity < 0) return challenge(401, 'Unauthorized');
  const username = request.get('username');
  if (typeof username !== 'string' || username === '' || request.get('realm') === undefined || request.get('nonce') === undefined) {
    ctx.refuse('bad-request');
    reply.fail(400, 'Bad Request');
    return undefined;
  }
  if (!nonceValid) {
    ctx.refuse('stale-nonce');
    return challenge(438, 'Stale Nonce');
  }
  const password = ctx.credentials(username);
  // The key uses the server's realm (as node-turn's did): a request naming another realm fails here.
  if (password === undefined || !integrityMatches(buf, integrity, longTermKey(username, ctx.realm, password))) {
    ctx.refuse('unauthorized');
    return challenge(401, 'Unauthorized');
  }
  // RFC 8656 section 5: requests on an allocation must use the credentials that created it.
  if (owner !== undefined && owner !== username) {
    ctx.refuse('wrong-credentials');
    reply.fail(441, 'Wrong Credentials');
    return undefined;
  }
  reply.authenticate(username, password);
  return username;
}
