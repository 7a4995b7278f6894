import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { UPGRADE_REFUSALS, type UpgradeRefusal } from '../protocol/index.js';
import { type Grant, tokenFrom, verifyToken } from './auth.js';
import { hostAllowed, hostChecked } from './host-check.js';
import type { ResolvedOptions } from './options.js';

export type UpgradeCheck = { ok: true; grant: Grant } | { ok: false; reason: UpgradeRefusal };

/** Subprotocols offered in Sec-WebSocket-Protocol (RFC 6455 §4.1, comma-separated tokens). */
export function offeredSubprotocols(request: IncomingMessage): string[] {
  const header = request.headers['sec-websocket-protocol'];
  if (!header) return [];
  return header
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Origin check (RFC 6455 §10.2): browsers always send Origin, and only browsers need
 * protecting from cross-site WebSocket hijacking, so a missing Origin is allowed.
 */
export function originAllowed(request: IncomingMessage, allowed: ResolvedOptions['allowedOrigins']): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  if (allowed === '*') return true;
  if (allowed) return allowed.includes(origin);
  // Default: same origin as the URL the client used (its Host header), any scheme.
  const host = request.headers.host;
  if (!host) return false;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

export interface UpgradeContext {
  options: ResolvedOptions;
  closing: boolean;
  connections: number;
  /** The client's per-IP key (see sourceKey) and how many connections it already holds. */
  source: string;
  connectionsFrom(source: string): number;
  /** The client asked for our subprotocol (WebSocket: Sec-WebSocket-Protocol; HTTP transports: `v`). */
  offered: boolean;
}

/** Every check that must pass before a 101, in order of cost. */
export async function checkUpgrade(request: IncomingMessage, url: URL, ctx: UpgradeContext): Promise<UpgradeCheck> {
  const { options } = ctx;
  if (ctx.closing) return { ok: false, reason: 'shutting-down' };
  if (url.pathname !== options.path) return { ok: false, reason: 'bad-path' };
  if (hostChecked(request, options) && !hostAllowed(request, options.allowedHosts)) return { ok: false, reason: 'bad-host' };
  if (!originAllowed(request, options.allowedOrigins)) return { ok: false, reason: 'bad-origin' };
  if (!ctx.offered) return { ok: false, reason: 'bad-subprotocol' };
  if (ctx.connections >= options.limits.maxConnections) return { ok: false, reason: 'server-full' };
  const perIp = options.limits.maxConnectionsPerIp;
  if (perIp > 0 && ctx.connectionsFrom(ctx.source) >= perIp) return { ok: false, reason: 'ip-full' };
  let grant: Grant = {};
  if (options.secret !== undefined) {
    const token = tokenFrom(request, url);
    const verified = token ? await verifyToken(options.secret, token, undefined, { audience: options.tokenAudience, issuer: options.tokenIssuer }) : null;
    if (!verified) return { ok: false, reason: 'unauthorized' };
    grant = verified;
  }
  if (options.verify) {
    const result = await options.verify(request);
    if (result === false) return { ok: false, reason: 'unauthorized' };
    if (typeof result === 'object') grant = { ...grant, ...result };
  }
  return { ok: true, grant };
}

/** Answers a refused upgrade with a real HTTP status before any 101 (like ws's abortHandshake). */
export function refuseUpgrade(socket: Duplex, reason: UpgradeRefusal): void {
  const status = UPGRADE_REFUSALS[reason];
  const body = `${reason}\n`;
  const headers = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    `X-Rallypoint-Refusal: ${reason}`,
  ];
  if (reason === 'unauthorized') headers.push('WWW-Authenticate: Bearer');
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
  // end() flushes; destroy after a beat is not needed: the client reads the status, then we close.
}
