import type { IncomingMessage } from 'node:http';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';

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
export async function signToken(secret: string, claims: Grant & { ttlSeconds: number }): Promise<string> {
  const payload: Record<string, string> = {};
  if (claims.room !== undefined) payload.room = claims.room;
  const jwt = new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + claims.ttlSeconds);
  if (claims.sub !== undefined) jwt.setSubject(claims.sub);
  return jwt.sign(encoder.encode(secret));
}

/** Verifies a token; null when it is missing, forged, malformed or expired. */
export async function verifyToken(secret: string, token: string, nowSeconds?: number): Promise<Grant | null> {
  try {
    const { payload } = await jwtVerify(token, encoder.encode(secret), {
      algorithms: ['HS256'],
      requiredClaims: ['exp'],
      ...(nowSeconds === undefined ? {} : { currentDate: new Date(nowSeconds * 1000) }),
    });
    const grant: Grant = {};
    if (typeof payload.room === 'string') grant.room = payload.room;
    if (typeof payload.sub === 'string') grant.sub = payload.sub;
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
