import type { IncomingMessage } from 'node:http';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';

/** What a verified token (or the verify hook) allows. */
export interface Grant {
  /** When set, the connection may join only this room. */
  room?: string;
  /** Subject, for logs. */
  sub?: string;
}

/** Custom upgrade check: return a Grant (or true) to accept, false to refuse with 401. */
export type VerifyHook = (request: IncomingMessage) => boolean | Grant | Promise<boolean | Grant>;

const encoder = new TextEncoder();

/**
 * Mints a token for `rallypoint` clients: a JWT (RFC 7519) signed with HMAC-SHA256
 * (RFC 7518 §3.2), so any JWT library can mint one too. `exp` is required.
 */
export async function signToken(secret: string, claims: Grant & { ttlSeconds: number; audience?: string | string[]; issuer?: string }): Promise<string> {
  const payload: Record<string, string> = {};
  if (claims.room !== undefined) payload.room = claims.room;
  const jwt = new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + claims.ttlSeconds);
  if (claims.sub !== undefined) jwt.setSubject(claims.sub);
  if (claims.audience !== undefined) jwt.setAudience(claims.audience);
  if (claims.issuer !== undefined) jwt.setIssuer(claims.issuer);
  return jwt.sign(encoder.encode(secret));
}

/** Claims a server requires of every token besides a valid signature and `exp`. */
export interface TokenChecks {
  /** The `aud` claim must name one of these (RFC 7519 §4.1.3). */
  audience?: string | string[] | undefined;
  /** The `iss` claim must be one of these (RFC 7519 §4.1.1). */
  issuer?: string | string[] | undefined;
}

/**
 * Verifies a token; null when it is missing, forged, malformed, expired, fails an
 * audience/issuer check, or carries a `room` or `sub` claim that is not a string (a room
 * claim the server cannot read must not become "any room").
 */
export async function verifyToken(secret: string, token: string, nowSeconds?: number, checks: TokenChecks = {}): Promise<Grant | null> {
  try {
    const { payload } = await jwtVerify(token, encoder.encode(secret), {
      algorithms: ['HS256'],
      requiredClaims: ['exp'],
      ...(nowSeconds === undefined ? {} : { currentDate: new Date(nowSeconds * 1000) }),
      ...(checks.audience === undefined ? {} : { audience: checks.audience }),
      ...(checks.issuer === undefined ? {} : { issuer: checks.issuer }),
    });
    const grant: Grant = {};
    if (payload.room !== undefined) {
      if (typeof payload.room !== 'string') return null;
      grant.room = payload.room;
    }
    if (payload.sub !== undefined) {
      if (typeof payload.sub !== 'string') return null;
      grant.sub = payload.sub;
    }
    return grant;
  } catch (err) {
    if (err instanceof joseErrors.JOSEError || err instanceof TypeError) return null;
    throw err;
  }
}

/**
 * The token of an upgrade request: `Authorization: Bearer <t>` (Node clients) or the
 * `token` query parameter (browsers cannot set headers on a WebSocket).
 */
export function tokenFrom(request: IncomingMessage, url: URL): string | null {
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice(7).trim();
  return url.searchParams.get('token');
}
