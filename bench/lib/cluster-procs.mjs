/**
 * The processes of bench/cluster.mjs: a Redis without persistence, `rallypoint serve`
 * nodes, socket.io nodes and bare relay nodes, each optionally pinned to CPUs with taskset. Every process
 * started here is SIGKILLed by killAll() (bench/lib/children.mjs: on exit, failure and signals).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { killAll, track, trackDir } from './children.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(root, 'dist', 'signaling', 'cli', 'main.js');
const SOCKETIO_NODE = join(root, 'bench', 'lib', 'socketio-node.mjs');
const BARE_NODE = join(root, 'bench', 'lib', 'bare-redis-node.mjs');
/** `rallypoint serve` prints this once it accepts connections (test/helpers/cli.ts START_LINE). */
const START_LINE = /^rallypoint listening on (http:\/\/[^\s]+) \(signaling (ws:\/\/[^\s)]+)\)$/;

export { killAll };

/** Spawns `cmd args`, under `taskset -c cpus` when given (exec: the pid stays the command's). */
function launch(cmd, args, cpus) {
  const [file, argv] = cpus === undefined ? [cmd, args] : ['taskset', ['-c', cpus, cmd, ...args]];
  const child = track(spawn(file, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  child.stderrTail = () => stderr;
  return child;
}

/** Resolves with the match of the first stdout line matching `re`; rejects on exit or timeout. */
function waitLine(child, re, label, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    const done = (err, m) => {
      clearTimeout(timer);
      rl.off('line', onLine);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(m);
    };
    const onLine = (line) => {
      const m = re.exec(line);
      if (m) done(null, m);
    };
    const onExit = (code, sig) => done(new Error(`${label} exited (${code ?? sig}) before it was ready: ${child.stderrTail()}`));
    const timer = setTimeout(() => done(new Error(`${label}: not ready within ${timeoutMs} ms: ${child.stderrTail()}`)), timeoutMs);
    rl.on('line', onLine);
    child.once('exit', onExit);
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export function stop(child, graceMs = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** redis-server on a free port, no RDB, no AOF, in a temporary directory. */
export async function startRedis(cpus) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rp-bench-redis-'));
  trackDir(dir);
  const child = launch('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], cpus);
  await waitLine(child, /Ready to accept connections/, 'redis-server');
  const url = `redis://127.0.0.1:${port}`;
  const admin = createClient({ url });
  admin.on('error', () => {});
  await admin.connect();
  return {
    child,
    pid: child.pid,
    url,
    /** Calls per command since the server started (INFO commandstats), without our own INFO. */
    async commandCalls() {
      const calls = {};
      for (const m of (await admin.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        if (m[1] !== 'info') calls[m[1]] = Number(m[2]);
      }
      return calls;
    },
    async stop() {
      await admin.quit().catch(() => {});
      await stop(child);
    },
  };
}

/**
 * `rallypoint serve` on a free port of 127.0.0.1, TURN off, logs at warn, the per-connection
 * message limits and the per-IP connection limit out of the way of a load generator.
 */
export async function startRallypoint({ redisUrl, nodeId, cpus, extra = [] } = {}) {
  const args = [
    CLI,
    'serve',
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--turn',
    'off',
    '--log-level',
    'warn',
    '--messages-per-second',
    '10000000',
    '--message-burst',
    '10000000',
    '--max-connections-per-ip',
    '0',
    ...(redisUrl ? ['--redis', redisUrl] : []),
    ...(redisUrl && nodeId ? ['--node-id', nodeId] : []),
    ...extra,
  ];
  const child = launch(process.execPath, args, cpus);
  const m = await waitLine(child, START_LINE, `rallypoint serve${nodeId ? ` ${nodeId}` : ''}`);
  return { child, pid: child.pid, url: m[1], wsUrl: m[2], port: Number(new URL(m[1]).port) };
}

/** A socket.io node (bench/lib/socketio-node.mjs); no `redisUrl`: no adapter; `transports` e.g. 'polling,websocket'. */
export async function startSocketIo({ redisUrl, cpus, transports = 'websocket' }) {
  const child = launch(process.execPath, [SOCKETIO_NODE, redisUrl ?? 'none', transports], cpus);
  const m = await waitLine(child, /^socket\.io listening on (\d+)$/, 'socket.io node');
  return { child, pid: child.pid, url: `http://127.0.0.1:${m[1]}`, port: Number(m[1]) };
}

export async function startBareRedis({ redisUrl, nodeId, cpus }) {
  const child = launch(process.execPath, [BARE_NODE, redisUrl, nodeId], cpus);
  const m = await waitLine(child, /^bare listening on (\d+)$/, 'bare node');
  return { child, pid: child.pid, wsUrl: `ws://127.0.0.1:${m[1]}/ws`, port: Number(m[1]) };
}
