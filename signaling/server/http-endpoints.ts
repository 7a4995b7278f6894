/** The plain HTTP endpoints beside the signaling path: `GET /healthz` and `GET /metrics` (the transports are http-transport.ts). */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

export interface HttpEndpointsContext {
  readonly registry: Registry;
  closing(): boolean;
  /** A shared store (Redis) is unreachable: 503 so a load balancer sends clients elsewhere. */
  degraded(): boolean;
  status(): Record<string, number>;
  /** `/metrics` needs `Authorization: Bearer <token>` when set. */
  readonly metricsToken?: string | undefined;
  /** Serve `/metrics` here (false: it is served on a listener of its own). */
  readonly serveMetrics: boolean;
}

/**
 * `GET /healthz` and `GET /metrics`. Returns false for any other request so a host
 * application can route it (and for `/metrics` when it is served elsewhere).
 */
export function handleHttp(ctx: HttpEndpointsContext, req: IncomingMessage, res: ServerResponse): boolean {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/healthz' && !(path === '/metrics' && ctx.serveMetrics)) return false;
  if (!allowedMethod(req, res)) return true;
  if (path === '/healthz') {
    const closing = ctx.closing();
    const degraded = !closing && ctx.degraded();
    const body = JSON.stringify({ status: closing ? 'closing' : degraded ? 'degraded' : 'ok', ...ctx.status() });
    res.writeHead(closing || degraded ? 503 : 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(body);
    return true;
  }
  serveMetrics(ctx, req, res);
  return true;
}

/** `GET /metrics` alone (a metrics listener of its own); false for any other path. */
export function handleMetricsHttp(ctx: HttpEndpointsContext, req: IncomingMessage, res: ServerResponse): boolean {
  if ((req.url ?? '/').split('?')[0] !== '/metrics') return false;
  if (allowedMethod(req, res)) serveMetrics(ctx, req, res);
  return true;
}

function allowedMethod(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
  return false;
}

/** Compares digests, so neither the token's length nor its bytes leak through timing. */
function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(header.slice(7).trim()), digest(token));
}

function serveMetrics(ctx: HttpEndpointsContext, req: IncomingMessage, res: ServerResponse): void {
  if (ctx.metricsToken !== undefined && !tokenMatches(req.headers.authorization, ctx.metricsToken)) {
    res.writeHead(401, { 'Content-Type': 'text/plain', 'WWW-Authenticate': 'Bearer realm="metrics"' }).end('unauthorized\n');
    return;
  }
  ctx.registry.metrics().then(
    (text) => res.writeHead(200, { 'Content-Type': ctx.registry.contentType }).end(text),
    (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`),
  );
}
