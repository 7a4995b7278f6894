/**
 * Long-term credential authentication (RFC 8489 section 9.2) for the embedded TURN server,
 * with stateless nonces bound to the client's transport address. Replaces node-turn's
 * lib/authentification.js, whose nonces came from Math.random, were kept in a map with a
 * one-hour timer each (holding the process open; any spoofed request grew it), and could be
 * replayed from any address for their hour.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { RefusalReason } from './metrics.js';
import { setUser, type NtMessage } from './node-turn.js';
import { integrityMatches, longTermKey } from './stun.js';

/** RFC 8489 section 9.2: a nonce's validity is up to the server; coturn's default is an hour too. */
export const NONCE_TTL_MS = 3_600_000;

/** Returns the password for a username, or undefined if the user is unknown or expired. */
export type CredentialLookup = (username: string) => string | undefined;

/**
 * Nonces: 8 random bytes and the expiry, then an HMAC of both and of the client's IP and port
 * under a per-server key (58 hex characters; no state). Like coturn, a nonce is only good for
 * the transport address it was issued to: a request captured on the wire and replayed from
 * another address gets 438 Stale Nonce (RFC 8489 section 9.2.4), and the fresh nonce it
 * carries is useless to the original sender's MESSAGE-INTEGRITY.
 */
export class Nonces {
  private readonly key = randomBytes(32);

  constructor(private readonly now: () => number = () => Date.now()) {}

  issue(ip: string, port: number): string {
    const body = `${randomBytes(8).toString('hex')}${Math.floor((this.now() + NONCE_TTL_MS) / 1000).toString(16).padStart(10, '0')}`;
    return body + this.mac(body, ip, port);
  }

  /** True if `nonce` was issued by this server to `ip`:`port` and has not expired. */
  check(nonce: unknown, ip: string, port: number): boolean {
    if (typeof nonce !== 'string' || !/^[0-9a-f]{58}$/.test(nonce)) return false;
    const body = nonce.slice(0, 26);
    if (!timingSafeEqual(Buffer.from(nonce.slice(26), 'hex'), Buffer.from(this.mac(body, ip, port), 'hex'))) return false;
    return parseInt(body.slice(16), 16) * 1000 > this.now();
  }

  private mac(body: string, ip: string, port: number): string {
    return createHmac('sha256', this.key).update(`${body}|${ip}|${port}`).digest('hex').slice(0, 32);
  }
}

export interface AuthContext {
  realm: string;
  credentials: CredentialLookup;
  nonces: Nonces;
  /** Counts a refusal (turn/metrics.ts). */
  refuse(reason: RefusalReason): void;
  /**
   * The request's source as the socket reported it (rinfo): nonces are issued and checked
   * for this form (node-turn's Address expands IPv6 differently).
   */
  source: { address: string; port: number };
}

/**
 * RFC 8489 section 9.2.4, in node-turn's order of checks: the username of a request that
 * passes, after signing `reply` with its key (node-turn's encoder reads the reply's user), or
 * undefined after answering it. `integrity` is the offset of MESSAGE-INTEGRITY in `buf`
 * (turn/stun.ts scanAttributes), -1 if absent; the HMAC is computed at most once, after the
 * rate limit. `nonceValid`: the request's NONCE passed `Nonces.check` for its source (the
 * server's gate checked it once, to choose the rate limit). `owner` is the username of the
 * allocation on the request's 5-tuple, if any.
 */
export function authenticate(ctx: AuthContext, msg: NtMessage, reply: NtMessage, buf: Buffer, integrity: number, nonceValid: boolean, owner: string | undefined): string | undefined {
  const { address, port } = ctx.source;
  const challenge = (code: number, reason: string): undefined => {
    reply.addAttribute('realm', ctx.realm);
    reply.addAttribute('nonce', ctx.nonces.issue(address, port));
    reply.reject(code, reason);
    return undefined;
  };
  // The first 401 of a session is its normal start: not counted.
  if (integrity < 0) return challenge(401, 'Unauthorized');
  const username = msg.getAttribute('username');
  if (typeof username !== 'string' || username === '' || msg.getAttribute('realm') === undefined || msg.getAttribute('nonce') === undefined) {
    ctx.refuse('bad-request');
    reply.reject(400, 'Bad Request');
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
    reply.reject(441, 'Wrong Credentials');
    return undefined;
  }
  setUser(msg, reply, username, password);
  return username;
}
