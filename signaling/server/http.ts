import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

export interface HttpEndpointsContext {
  registry: Registry;
  closing(): boolean;
  status(): Record<string, number>;
}

/**
 * `GET /healthz` and `GET /metrics`. Returns false for any other request so a host
 * application can route it.
 */
export function handleHttp(ctx: HttpEndpointsContext, req: IncomingMessage, res: ServerResponse): boolean {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/healthz' && path !== '/metrics') return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
    return true;
  }
  if (path === '/healthz') {
    const closing = ctx.closing();
    const body = JSON.stringify({ status: closing ? 'closing' : 'ok', ...ctx.status() });
    res.writeHead(closing ? 503 : 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(body);
    return true;
  }
  ctx.registry.metrics().then(
    (text) => res.writeHead(200, { 'Content-Type': ctx.registry.contentType }).end(text),
    (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`),
  );
  return true;
}
