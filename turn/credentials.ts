/**
 * TURN REST API credentials (draft-uberti-behave-turn-rest-00, coturn `use-auth-secret`):
 * username = "<unix expiry>:<peer id>", password = base64(HMAC-SHA1(secret, username)).
 * The same secret works with coturn's `static-auth-secret`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { CredentialLookup } from './auth.js';
import { TurnError } from './errors.js';

export interface TurnCredentials {
  username: string;
  password: string;
  /** Unix seconds. */
  expiresAt: number;
}

export interface RestCredentialOptions {
  secret: string | Buffer;
  /** Seconds a minted credential is valid (default 86400, coturn's usual). */
  ttl?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

function checkSecret(secret: string | Buffer): void {
  if (secret.length < 16) throw new TurnError('insecure-config', 'the TURN secret must be at least 16 bytes');
}

export function restPassword(secret: string | Buffer, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64');
}

/** Mints credentials for `peerId`, valid for `ttl` seconds. */
export function mintTurnCredentials(peerId: string, options: RestCredentialOptions): TurnCredentials {
  checkSecret(options.secret);
  if (peerId.length === 0 || peerId.length > 200 || /[:\s]/.test(peerId)) {
    throw new TurnError('bad-credentials', 'the peer id must be 1-200 characters without ":" or whitespace');
  }
  const now = options.now?.() ?? Date.now();
  const expiresAt = Math.floor(now / 1000) + (options.ttl ?? 86_400);
  const username = `${expiresAt}:${peerId}`;
  return { username, password: restPassword(options.secret, username), expiresAt };
}

/**
 * The password for a REST username, or undefined if the username is malformed or expired.
 * A forged username yields a password the client cannot know, so its MESSAGE-INTEGRITY fails
 * and the server answers 401.
 */
export function restCredentialLookup(options: RestCredentialOptions): CredentialLookup {
  checkSecret(options.secret);
  return (username: string) => {
    const m = /^(\d{1,12}):(.+)$/.exec(username);
    if (!m) return undefined;
    const now = options.now?.() ?? Date.now();
    if (Number(m[1]) * 1000 <= now) return undefined;
    return restPassword(options.secret, username);
  };
}

/** True if `password` is the valid, unexpired password for `username`. */
export function verifyTurnCredentials(username: string, password: string, options: RestCredentialOptions): boolean {
  const expected = restCredentialLookup(options)(username);
  if (expected === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(password);
  return a.length === b.length && timingSafeEqual(a, b);
}
