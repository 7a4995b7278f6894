/**
 * Real Redis for the cluster tests: Debian's redis-server on 127.0.0.1, a free port, no
 * persistence (a restart starts empty), started by the test and stopped by `stopAllRedis()`
 * (call it in afterEach). Override the binaries with REDIS_SERVER_PATH / REDIS_CLI_PATH.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeNeeding, freePort, missingTools, type OwnedChild, running, spawnOwned, waitForLine } from './child.js';

export const REDIS_SERVER = process.env.REDIS_SERVER_PATH ?? '/usr/bin/redis-server';
export const REDIS_CLI = process.env.REDIS_CLI_PATH ?? '/usr/bin/redis-cli';

/** Printed once the listening sockets are open (Redis 6: "...connections", 7: "...connections tcp"). */
const READY = /Ready to accept connections/;
const IN_USE = /Address already in use/;
const START_TIMEOUT_MS = 10_000;

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  /** The current process's pid (changes with `restart()`). */
  readonly pid: number;
  /** SIGTERM (after SIGCONT, in case it is frozen), waits for the exit, removes its directory. Idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL; SIGCONT follows any other, in case it is frozen) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a new, empty server on the same port after `kill()` or `stop()`. */
  restart(): Promise<void>;
  /** SIGSTOP: the socket stays open and nothing answers (a hung server). */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** Runs `redis-cli -p PORT ...args` and resolves with its stdout. */
  cli(...args: string[]): Promise<string>;
}

export interface RedisCluster {
  readonly nodes: RedisServer[];
  /** For node-redis: `createCluster({ rootNodes })`. */
  readonly rootNodes: { url: string }[];
  stop(): Promise<void>;
}

/** Why Redis cannot run here, or null when it can. */
export function redisMissing(): string | null {
  return missingTools([
    { path: REDIS_SERVER, pkg: 'redis-server' },
    { path: REDIS_CLI, pkg: 'redis-tools' },
  ]);
}

/** `describe` for suites that need Redis (skipped with a reason outside CI when it is missing). */
export function describeRedis(name: string, fn: () => void): void {
  describeNeeding(redisMissing(), name, fn);
}

const servers = new Set<RedisServer>();
const clusters = new Set<RedisCluster>();

export function redisCli(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: START_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli -p ${port} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Starts one redis-server; `extra` are further `--name value` arguments (cluster mode). */
async function spawnRedis(port: number, extra: (dir: string) => string[]): Promise<{ proc: OwnedChild; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'rallypoint-redis-'));
  // `--save ''` and `--appendonly no`: nothing survives a restart, and nothing is written
  // (the temp dir is the working directory in case a command asks for a save anyway).
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', '--daemonize', 'no', '--logfile', '', ...extra(dir)];
  const proc = spawnOwned(REDIS_SERVER, args, { cwd: dir, deathSignal: 'SIGKILL' });
  try {
    await waitForLine(proc, READY, START_TIMEOUT_MS, `redis-server on port ${port}`);
  } catch (err) {
    if (running(proc)) {
      proc.child.kill('SIGKILL');
      await proc.exited;
    }
    await rm(dir, { recursive: true, force: true });
    throw Object.assign(err as Error, { addressInUse: proc.output.some((l) => IN_USE.test(l)) });
  }
  return { proc, dir };
}

/**
 * Starts on `port` or on a free one. A free port found by listening on port 0 can be taken
 * by someone else before redis binds it: then another one is tried. A given port is tried
 * a few times (it may still be held by a process that is exiting).
 */
async function spawnOnFreePort(port: number | undefined, extra: (dir: string) => string[], portsNeeded = 1): Promise<{ proc: OwnedChild; dir: string; port: number; more: number[] }> {
  for (let attempt = 1; ; attempt++) {
    const p = port ?? (await freePort());
    const more: number[] = [];
    while (more.length < portsNeeded - 1) {
      const m = await freePort();
      if (m !== p && !more.includes(m)) more.push(m);
    }
    try {
      const started = await spawnRedis(p, (dir) => [...extra(dir), ...more.flatMap((m) => ['--cluster-port', String(m)])]);
      return { ...started, port: p, more };
    } catch (err) {
      if (!(err as { addressInUse?: boolean }).addressInUse || attempt >= 5) throw err;
      if (port !== undefined) await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

async function launch(opts: { port?: number; cluster?: boolean }): Promise<RedisServer> {
  const clusterArgs = (dir: string): string[] => (opts.cluster ? ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000'] : []);
  // Cluster nodes also listen on a bus port; its default (port + 10000) can be above 65535
  // for an ephemeral port, so it is chosen like the port itself (--cluster-port, Redis 7).
  let current = await spawnOnFreePort(opts.port, clusterArgs, opts.cluster ? 2 : 1);
  const port = current.port;
  let stopping: Promise<void> | null = null;

  const waitExit = async (): Promise<void> => {
    await current.proc.exited;
  };
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return current.proc.child.pid ?? -1;
    },
    stop() {
      stopping ??= (async () => {
        if (running(current.proc)) {
          current.proc.child.kill('SIGCONT');
          current.proc.child.kill('SIGTERM');
        }
        await waitExit();
        await rm(current.dir, { recursive: true, force: true });
        servers.delete(server);
      })();
      return stopping;
    },
    async kill(signal = 'SIGKILL') {
      if (running(current.proc)) {
        current.proc.child.kill(signal);
        // A frozen process handles no other signal until it runs again.
        if (signal !== 'SIGKILL') current.proc.child.kill('SIGCONT');
      }
      await waitExit();
    },
    async restart() {
      if (stopping) await stopping;
      if (running(current.proc)) throw new Error(`redis on port ${port} is still running: kill() or stop() it first`);
      await rm(current.dir, { recursive: true, force: true });
      const more = current.more;
      // Same port (and same bus port), a fresh empty directory: a cluster node comes back
      // as a new, empty node that is not part of its old cluster.
      const next = await spawnOnFreePort(port, (dir) => [...clusterArgs(dir), ...more.flatMap((m) => ['--cluster-port', String(m)])], 1);
      current = { ...next, more };
      stopping = null;
      servers.add(server);
    },
    freeze() {
      current.proc.child.kill('SIGSTOP');
    },
    thaw() {
      current.proc.child.kill('SIGCONT');
    },
    cli: (...args) => redisCli(port, args),
  };
  servers.add(server);
  const pong = (await server.cli('PING')).trim();
  if (pong !== 'PONG') {
    await server.stop();
    throw new Error(`redis on port ${port} answered PING with ${JSON.stringify(pong)}`);
  }
  return server;
}

/** One standalone Redis, empty, on 127.0.0.1 (a free port unless `port` is given). */
export function startRedis(opts: { port?: number } = {}): Promise<RedisServer> {
  return launch({ port: opts.port });
}

/**
 * A Redis Cluster of `masters` masters (no replicas) covering all 16384 slots, ready when
 * every node reports `cluster_state:ok`.
 */
export async function startRedisCluster(opts: { masters?: number } = {}): Promise<RedisCluster> {
  const count = opts.masters ?? 3;
  if (count < 3) throw new Error('redis-cli --cluster create needs at least 3 masters');
  const nodes: RedisServer[] = [];
  const cluster: RedisCluster = {
    nodes,
    rootNodes: [],
    async stop() {
      clusters.delete(cluster);
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
  clusters.add(cluster);
  try {
    for (let i = 0; i < count; i++) nodes.push(await launch({ cluster: true }));
    await nodes[0]!.cli('--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes');
    await Promise.all(nodes.map((n) => untilClusterOk(n)));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  cluster.rootNodes.push(...nodes.map((n) => ({ url: n.url })));
  return cluster;
}

/** Polls CLUSTER INFO (the gossip that spreads the slot map has no event to wait for). */
async function untilClusterOk(node: RedisServer, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let info = '';
  while (Date.now() < deadline) {
    info = await node.cli('CLUSTER', 'INFO');
    if (/^cluster_state:ok\r?$/m.test(info)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis cluster node ${node.port} not ok after ${timeoutMs} ms:\n${info}`);
}

/** Stops every Redis and cluster started by this file (afterEach). */
export async function stopAllRedis(): Promise<void> {
  await Promise.all([...clusters].map((c) => c.stop()));
  await Promise.all([...servers].map((s) => s.stop()));
}
