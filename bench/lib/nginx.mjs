/**
 * Debian's nginx as a plain-HTTP reverse proxy in front of bench servers, in one of the
 * configurations a client may meet (bench/transports.mjs). One nginx, one listen port per
 * upstream, run unprivileged-style from a temp dir (`daemon off`, pid, logs and temp paths
 * inside it). The tests' own starter (test/helpers/nginx.ts) runs the documented TLS config;
 * this one is the bench's small variant matrix.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stop } from './cluster-procs.mjs';

export const NGINX = process.env.NGINX_PATH ?? '/usr/sbin/nginx';

const running = new Set();
// SIGTERM (not SIGKILL) so the master takes its workers down with it.
process.on('exit', () => {
  for (const c of running) c.kill('SIGTERM');
});

/** What each mode adds to `location /` (after proxy_pass and Host). */
export const NGINX_MODES = {
  // The WebSocket lines of signaling/deploy/nginx.conf.
  pass: ['proxy_http_version 1.1;', 'proxy_set_header Upgrade $http_upgrade;', 'proxy_set_header Connection $connection_upgrade;'],
  // nginx's defaults: HTTP/1.0 upstream, the hop-by-hop Upgrade/Connection dropped, buffering
  // on (which a response turns off for itself with X-Accel-Buffering: no).
  strip: [],
  // As strip, and the response's X-Accel-Buffering is ignored: everything is buffered.
  buffered: ['proxy_buffering on;', 'proxy_ignore_headers X-Accel-Buffering;'],
};

/** Starts nginx in `mode` in front of 127.0.0.1:`upstreams`[i]; resolves with { ports (same order), stop() }. */
export async function startNginx(mode, upstreams) {
  const dir = mkdtempSync(join(tmpdir(), 'rp-bench-nginx-'));
  // Workers run as nobody when the master is root: they read and write in here.
  chmodSync(dir, 0o755);
  const ports = [];
  for (const _ of upstreams) ports.push(await freePort());
  const servers = upstreams.map((u, i) =>
    [
      `  server {`,
      `    listen 127.0.0.1:${ports[i]};`,
      `    location / {`,
      `      proxy_pass http://127.0.0.1:${u};`,
      `      proxy_set_header Host $http_host;`,
      `      proxy_read_timeout 75s;`,
      ...NGINX_MODES[mode].map((l) => `      ${l}`),
      `    }`,
      `  }`,
    ].join('\n'),
  );
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, t)};`);
  const conf = [
    'daemon off;',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    'error_log stderr error;',
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    ...temp,
    '  map $http_upgrade $connection_upgrade { default upgrade; "" close; }',
    ...servers,
    '}',
  ].join('\n');
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawn(NGINX, ['-e', 'stderr', '-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const stopAll = async () => {
    await stop(child);
    running.delete(child);
    rmSync(dir, { recursive: true, force: true });
  };
  // nginx prints nothing when ready: poll a connect to the last port.
  for (const deadline = Date.now() + 10_000; ; ) {
    if (child.exitCode !== null) throw new Error(`nginx (${mode}) exited: ${stderr}`);
    if (await accepts(ports[ports.length - 1])) break;
    if (Date.now() > deadline) {
      await stopAll();
      throw new Error(`nginx (${mode}) not listening after 10 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { mode, ports, pid: child.pid, stop: stopAll };
}

function accepts(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
