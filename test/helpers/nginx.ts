/**
 * Debian's nginx running the documented config (signaling/deploy/nginx.conf) in front of
 * test nodes. Only the deployment-specific values are replaced (listen port, upstream
 * servers, certificate, server_name), each by a targeted replacement that throws when the
 * documented line is missing, so the tests run what users copy. Stop everything with
 * `stopAllNginx()` (afterEach). Override the binaries with NGINX_PATH / OPENSSL_PATH.
 */
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ClientOptions, WebSocket } from 'ws';
import type { WebSocketConstructor } from '../../signaling/client/index.js';
import { describeNeeding, freePort, missingTools, type OwnedChild, running, spawnOwned } from './child.js';

export const NGINX = process.env.NGINX_PATH ?? '/usr/sbin/nginx';
export const OPENSSL = process.env.OPENSSL_PATH ?? '/usr/bin/openssl';
export const NGINX_CONF = fileURLToPath(new URL('../../signaling/deploy/nginx.conf', import.meta.url));
const START_TIMEOUT_MS = 10_000;

export interface TestCert {
  certPath: string;
  keyPath: string;
  /** The certificate (self-signed, CN=localhost, SAN DNS:localhost, IP:127.0.0.1) for clients to trust. */
  pem: string;
  /** base64 SHA-256 of its public key, for Chromium's --ignore-certificate-errors-spki-list. */
  spki: string;
}

export interface NginxOptions {
  /** Ports of the nodes on 127.0.0.1, in upstream order. */
  upstreams: number[];
  /** TLS on the listener (default true); false listens in plain HTTP (urls are then http:/ws:). */
  tls?: boolean;
  /** How `location /` proxies (default: as documented). Applied before `mutate`. */
  proxy?: ProxyVariant;
  /** A last edit of the finished config text (a test of a variant). */
  mutate?: (conf: string) => string;
}

/**
 * The proxies of networks where a WebSocket does not get through, as an edit of the
 * documented `location /` (each a targeted replacement that throws when the line is gone).
 */
export interface ProxyVariant {
  /** Send `Upgrade: ""` and `Connection: ""` upstream: the upgrade arrives as a plain GET. */
  stripUpgrade?: boolean;
  /**
   * Buffer every response, whatever its `X-Accel-Buffering` says. nginx 1.22 still passes
   * each buffered chunk on at once (measured): alone, this holds nothing back.
   */
  forceBuffering?: boolean;
  /**
   * gzip event streams and poll answers (for clients that accept it, as fetch does). With
   * `forceBuffering` the compressor is never told to flush: SSE events are held until the
   * stream ends. Without it, `X-Accel-Buffering: no` makes nginx flush every chunk.
   */
  compress?: boolean;
  /** proxy_read_timeout and proxy_send_timeout (nginx time, e.g. `2s`) instead of 75s. */
  timeout?: string;
}

export interface NginxServer {
  readonly port: number;
  /** `https://localhost:PORT` (`http://` without TLS). */
  readonly httpsUrl: string;
  /** `wss://localhost:PORT/ws` (`ws://` without TLS). */
  readonly wssUrl: string;
  /** The certificate nginx presents: trust it in Node clients (`wsWithCa`). */
  readonly caPem: string;
  /** For Chromium: `--ignore-certificate-errors-spki-list=${spki}`. */
  readonly spki: string;
  /** The config nginx runs, as written. */
  readonly conf: string;
  /** nginx's access log lines so far (`$remote_addr $upstream_addr $status "$request"`). */
  accessLog(): Promise<string[]>;
  /** nginx's error log (stderr, level notice and up): the last 200 lines. */
  errorLog(): string[];
  /** SIGTERM (fast shutdown: open WebSockets are cut), waits for the exit. Idempotent. */
  stop(): Promise<void>;
}

/** Why nginx (and openssl for its certificate) cannot run here, or null when they can. */
export function nginxMissing(): string | null {
  return missingTools([
    { path: NGINX, pkg: 'nginx' },
    { path: OPENSSL, pkg: 'openssl' },
  ]);
}

/** `describe` for suites that need nginx (skipped with a reason outside CI when it is missing). */
export function describeNginx(name: string, fn: () => void): void {
  describeNeeding(nginxMissing(), name, fn);
}

const instances = new Set<NginxServer>();
let certDir: string | null = null;
let cert: Promise<TestCert> | null = null;

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: START_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout + stderr);
    });
  });
}

/** The self-signed certificate for localhost, made once and kept until `stopAllNginx()`. */
export function testCert(): Promise<TestCert> {
  cert ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rallypoint-cert-'));
    certDir = dir;
    const certPath = join(dir, 'cert.pem');
    const keyPath = join(dir, 'key.pem');
    // P-256 keys are made in milliseconds (RSA takes a noticeable fraction of a second).
    await run(OPENSSL, [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ]);
    // nginx workers run as www-data when the master is root: let them read what they need.
    await chmod(dir, 0o755);
    const pem = await readFile(certPath, 'utf8');
    const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
    return { certPath, keyPath, pem, spki: createHash('sha256').update(der).digest('base64') };
  })();
  return cert;
}

// Vitest's workers do not always run 'exit' handlers: stopAllNginx() removes it too.
process.on('exit', () => {
  if (certDir !== null) rmSync(certDir, { recursive: true, force: true });
});

/** Replaces `pattern` in `conf`, throwing when the documented line is not there. */
function replaceOnce(conf: string, pattern: RegExp, replacement: string, what: string): string {
  if (!pattern.test(conf)) throw new Error(`signaling/deploy/nginx.conf no longer has ${what} (${String(pattern)}): update test/helpers/nginx.ts`);
  // A function, so `$` in the replacement is never read as a group reference.
  return conf.replace(pattern, (...groups: string[]) => replacement.replace(/\$(\d)/g, (_, i: string) => groups[Number(i)] ?? ''));
}

/** The documented config with this run's values; exported for tests of the substitution. */
export function testConfig(documented: string, v: { port: number; upstreams: number[]; tls: boolean; cert: TestCert; dir: string }): string {
  let conf = documented;
  // Deployment-specific values.
  conf = replaceOnce(conf, /^(\s*)listen 443 ssl;$/m, `$1listen 127.0.0.1:${v.port}${v.tls ? ' ssl' : ''};`, 'the `listen 443 ssl;` line');
  conf = replaceOnce(conf, /^(\s*)server_name rallypoint\.example\.com;$/m, '$1server_name localhost;', 'the server_name line');
  conf = replaceOnce(conf, /^(\s*)ssl_certificate \S+;$/m, `$1ssl_certificate ${v.cert.certPath};`, 'the ssl_certificate line');
  conf = replaceOnce(conf, /^(\s*)ssl_certificate_key \S+;$/m, `$1ssl_certificate_key ${v.cert.keyPath};`, 'the ssl_certificate_key line');
  const servers = /^(\s*)server 127\.0\.0\.1:\d+( [^;\n]*)?;\n(?:\s*server 127\.0\.0\.1:\d+(?: [^;\n]*)?;\n)+/m;
  const m = servers.exec(conf);
  if (!m) throw new Error('signaling/deploy/nginx.conf no longer has the upstream `server 127.0.0.1:PORT ...;` lines: update test/helpers/nginx.ts');
  const [, indent = '', params = ''] = m;
  conf = conf.replace(servers, v.upstreams.map((p) => `${indent}server 127.0.0.1:${p}${params};\n`).join(''));
  // What an unprivileged run in the foreground needs: its own pid file, logs and temp dirs.
  const main = [`daemon off;`, `pid ${join(v.dir, 'nginx.pid')};`, `error_log stderr notice;`].join('\n');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${join(v.dir, `${t}_temp`)};`);
  const http = [`    log_format rallypoint_test '$remote_addr $upstream_addr $status "$request"';`, `    access_log ${join(v.dir, 'access.log')} rallypoint_test;`, ...temp].join('\n');
  conf = `${main}\n${conf}`;
  conf = replaceOnce(conf, /^http \{$/m, `http {\n${http}`, 'the `http {` line');
  return conf;
}

/** The documented `location /` turned into `v`'s proxy; exported for tests of the edit. */
export function proxyConfig(conf: string, v: ProxyVariant): string {
  if (v.stripUpgrade) {
    conf = replaceOnce(conf, /^(\s*)proxy_set_header Upgrade \$http_upgrade;$/m, '$1proxy_set_header Upgrade "";', 'the `proxy_set_header Upgrade` line');
    conf = replaceOnce(conf, /^(\s*)proxy_set_header Connection \$connection_upgrade;$/m, '$1proxy_set_header Connection "";', 'the `proxy_set_header Connection` line');
  }
  const extra: string[] = [];
  // proxy_buffering is on by default; only the X-Accel-Buffering header from upstream turns it off.
  if (v.forceBuffering) extra.push('proxy_buffering on;', 'proxy_ignore_headers X-Accel-Buffering;');
  if (v.compress) extra.push('gzip on;', 'gzip_types text/event-stream text/plain;', 'gzip_min_length 0;');
  if (extra.length > 0) {
    conf = replaceOnce(conf, /^(\s*)proxy_http_version 1\.1;$/m, `$1proxy_http_version 1.1;${extra.map((l) => `\n$1${l}`).join('')}`, 'the first `proxy_http_version 1.1;` line');
  }
  if (v.timeout !== undefined) {
    conf = replaceOnce(conf, /^(\s*)proxy_read_timeout 75s;$/m, `$1proxy_read_timeout ${v.timeout};`, 'the `proxy_read_timeout 75s;` line');
    conf = replaceOnce(conf, /^(\s*)proxy_send_timeout 75s;$/m, `$1proxy_send_timeout ${v.timeout};`, 'the `proxy_send_timeout 75s;` line');
  }
  return conf;
}

/** Starts nginx with the documented config in front of `upstreams`; resolves once its port accepts connections. */
export async function startNginx(opts: NginxOptions): Promise<NginxServer> {
  if (opts.upstreams.length === 0) throw new Error('startNginx needs at least one upstream port');
  const tls = opts.tls ?? true;
  const c = await testCert();
  const documented = await readFile(NGINX_CONF, 'utf8');
  for (let attempt = 1; ; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'rallypoint-nginx-'));
    await chmod(dir, 0o755);
    const port = await freePort();
    let conf = proxyConfig(testConfig(documented, { port, upstreams: opts.upstreams, tls, cert: c, dir }), opts.proxy ?? {});
    if (opts.mutate) conf = opts.mutate(conf);
    const confPath = join(dir, 'nginx.conf');
    await writeFile(confPath, conf);
    // -e stderr: errors before the config is read (nginx >= 1.19.5) go to our pipe too.
    // The master gets SIGTERM if the test process dies: a fast shutdown that ends the workers.
    const proc = spawnOwned(NGINX, ['-e', 'stderr', '-p', dir, '-c', confPath], { cwd: dir, deathSignal: 'SIGTERM' });
    try {
      await untilListening(proc, port);
    } catch (err) {
      if (running(proc)) proc.child.kill('SIGKILL');
      await proc.exited;
      await rm(dir, { recursive: true, force: true });
      if (proc.output.some((l) => /Address already in use/.test(l)) && attempt < 5) continue;
      throw err;
    }
    let stopping: Promise<void> | null = null;
    const scheme = tls ? 's' : '';
    const server: NginxServer = {
      port,
      httpsUrl: `http${scheme}://localhost:${port}`,
      wssUrl: `ws${scheme}://localhost:${port}/ws`,
      caPem: c.pem,
      spki: c.spki,
      conf,
      async accessLog() {
        const text = await readFile(join(dir, 'access.log'), 'utf8').catch(() => '');
        return text.split('\n').filter(Boolean);
      },
      errorLog: () => [...proc.output],
      stop() {
        stopping ??= (async () => {
          if (running(proc)) proc.child.kill('SIGTERM');
          await proc.exited;
          await rm(dir, { recursive: true, force: true });
          instances.delete(server);
        })();
        return stopping;
      },
    };
    instances.add(server);
    return server;
  }
}

/** Polls a TCP connect (nginx prints nothing when it is ready); rejects when nginx exits. */
async function untilListening(proc: OwnedChild, port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!running(proc)) {
      await proc.exited;
      throw new Error(`nginx exited before listening on ${port}:\n${proc.output.join('\n')}`);
    }
    if (await accepts(port)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nginx not listening on ${port} after ${START_TIMEOUT_MS} ms:\n${proc.output.join('\n')}`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Stops every nginx started here and removes the test certificate (afterEach). */
export async function stopAllNginx(): Promise<void> {
  await Promise.all([...instances].map((n) => n.stop()));
  const dir = certDir;
  cert = null;
  certDir = null;
  if (dir !== null) await rm(dir, { recursive: true, force: true });
}

/**
 * A `ws` WebSocket class that trusts `caPem` (and takes further `ws` client options, e.g.
 * `localAddress`), for `new SignalingClient({ WebSocket: wsWithCa(nginx.caPem) })`.
 * ws's constructor is (address, protocols, options).
 */
export function wsWithCa(caPem: string, extra: ClientOptions = {}): WebSocketConstructor {
  class TrustingWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { ...extra, ca: caPem });
    }
  }
  return TrustingWebSocket as unknown as WebSocketConstructor;
}
