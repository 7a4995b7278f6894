import { readFile, realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Content types of the files `npm run build` puts in dist/web. Anything else is not served. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }).end('not found\n');
}

/**
 * A request handler for `listenSignaling({ onRequest })` that serves the files under `root`
 * (the demo and the browser bundle): GET and HEAD only, `/` is `index.html`, known file
 * types only. Paths are resolved and must stay under the real path of `root` (no `..`, no
 * encoded separators, no NUL, no symlinks out of it); anything else is 404.
 */
export function staticFiles(root: string): (req: IncomingMessage, res: ServerResponse) => void {
  const base = resolve(root);
  let realBase: Promise<string | null> | null = null;
  const baseDir = (): Promise<string | null> => (realBase ??= realpath(base).catch(() => null));

  async function lookup(urlPath: string): Promise<{ file: string; type: string } | null> {
    let rel: string;
    try {
      rel = decodeURIComponent(urlPath);
    } catch {
      return null;
    }
    // Decoded separators and NUL would let one URL segment name another path.
    if (rel.includes('\0') || rel.includes('\\') || rel.split('/').some((seg) => seg === '..' || seg === '.')) return null;
    if (rel.endsWith('/')) rel += 'index.html';
    const type = CONTENT_TYPES[extname(rel).toLowerCase()];
    const dir = await baseDir();
    if (!type || !dir) return null;
    const candidate = resolve(base, `.${rel}`);
    if (candidate !== base && !candidate.startsWith(base + sep)) return null;
    try {
      const real = await realpath(candidate);
      if (!real.startsWith(dir + sep)) return null;
      if (!(await stat(real)).isFile()) return null;
      return { file: real, type };
    } catch {
      return null;
    }
  }

  return (req, res) => {
    const urlPath = (req.url ?? '/').split(/[?#]/)[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    if (!urlPath.startsWith('/')) return notFound(res);
    lookup(urlPath)
      .then(async (found) => {
        if (!found) return notFound(res);
        const body = await readFile(found.file);
        res.writeHead(200, {
          'Content-Type': found.type,
          'Content-Length': body.byteLength,
          'X-Content-Type-Options': 'nosniff',
          'Cache-Control': 'no-cache',
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      })
      .catch(() => {
        if (!res.headersSent) notFound(res);
        else res.destroy();
      });
  };
}

/** Where `npm run build` puts the browser files: dist/web (this module runs from dist/ or from source). */
export function defaultWebRoot(): string {
  const top = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return basename(top) === 'dist' ? join(top, 'web') : join(top, 'dist', 'web');
}
