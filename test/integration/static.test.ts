import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultWebRoot, staticFiles } from '../../signaling/cli/static.js';
import { listenSignaling } from '../../signaling/server/index.js';
import { cleanup, defer } from '../helpers/resources.js';

afterEach(cleanup);

interface Raw {
  status: number;
  type: string | undefined;
  length: string | undefined;
  body: string;
}

/** A request with the path sent exactly as given (no URL normalization of `..` or escapes). */
function raw(port: number, path: string, method = 'GET'): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], length: res.headers['content-length'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('static files (the demo at / of `npm start`)', () => {
  let port = 0;
  let dir = '';

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rallypoint-static-'));
    defer(() => rm(dir, { recursive: true, force: true }));
    const root = join(dir, 'web');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'index.html'), '<!doctype html><title>home</title>');
    await writeFile(join(root, 'app.js'), 'export const app = 1;');
    await writeFile(join(root, 'style.css'), 'body{}');
    await writeFile(join(root, 'app.js.map'), '{}');
    await writeFile(join(root, 'data.bin'), 'binary');
    await writeFile(join(root, 'sub', 'index.html'), 'sub page');
    await writeFile(join(dir, 'secret.txt'), 'SECRET');
    await writeFile(join(dir, 'web-other.txt'), 'SIBLING');
    await symlink(join(dir, 'secret.txt'), join(root, 'link-out.txt'));
    await mkdir(join(root, 'dir.js'));
    const srv = await listenSignaling({ port: 0, host: '127.0.0.1', logger: false, onRequest: staticFiles(root) });
    defer(() => srv.close({ timeoutMs: 1_000 }));
    port = srv.port;
  });

  it('serves index.html at / and files with their content types', async () => {
    const home = await raw(port, '/');
    expect(home).toMatchObject({ status: 200, type: 'text/html; charset=utf-8', body: '<!doctype html><title>home</title>' });
    expect(await raw(port, '/index.html?room=a')).toMatchObject({ status: 200, body: home.body });
    expect(await raw(port, '/app.js')).toMatchObject({ status: 200, type: 'text/javascript; charset=utf-8', body: 'export const app = 1;' });
    expect(await raw(port, '/style.css')).toMatchObject({ status: 200, type: 'text/css; charset=utf-8' });
    expect(await raw(port, '/app.js.map')).toMatchObject({ status: 200, type: 'application/json; charset=utf-8' });
    expect(await raw(port, '/sub/')).toMatchObject({ status: 200, body: 'sub page' });
    const head = await raw(port, '/app.js', 'HEAD');
    expect(head).toMatchObject({ status: 200, length: '21', body: '' });
  });

  it('leaves /healthz and /metrics to the signaling server', async () => {
    const health = await raw(port, '/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok' });
  });

  it.each([
    ['/missing.js', 'a missing file'],
    ['/data.bin', 'an unknown file type'],
    ['/dir.js', 'a directory'],
    ['/../secret.txt', 'a parent path'],
    ['/sub/../../secret.txt', 'a parent path below a folder'],
    ['/%2e%2e/secret.txt', 'an encoded parent path'],
    ['/..%2fsecret.txt', 'an encoded separator'],
    ['/sub/..%5c..%5csecret.txt', 'an encoded backslash'],
    ['/../web-other.txt', 'a sibling whose name starts like the root'],
    ['/link-out.txt', 'a symlink that leaves the root'],
    ['/index.html%00.js', 'a NUL byte'],
    ['/%E0%A4%A', 'a malformed escape'],
    ['//etc/passwd', 'an absolute path'],
    ['/./index.html', 'a dot segment'],
  ])('answers 404 for %s (%s)', async (path) => {
    const res = await raw(port, path);
    expect(res.status).toBe(404);
    expect(res.body).not.toMatch(/SECRET|SIBLING|root:/);
  });

  it('answers 405 to other methods', async () => {
    expect((await raw(port, '/', 'POST')).status).toBe(405);
    expect((await raw(port, '/app.js', 'DELETE')).status).toBe(405);
  });

  it('answers 404 to everything when the root does not exist (no build yet)', async () => {
    const srv = await listenSignaling({ port: 0, host: '127.0.0.1', logger: false, onRequest: staticFiles(join(dir, 'nope')) });
    defer(() => srv.close({ timeoutMs: 1_000 }));
    expect((await raw(srv.port, '/')).status).toBe(404);
    expect((await raw(srv.port, '/index.html')).status).toBe(404);
  });

  it('points the CLI at dist/web', () => {
    expect(defaultWebRoot()).toMatch(/[/\\]dist[/\\]web$/);
  });
});
