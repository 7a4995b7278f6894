#!/usr/bin/env node
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { type Logger, pino } from 'pino';
import { Registry } from 'prom-client';
import { coturnConfig } from '../../turn/coturn-config.js';
import { TurnError } from '../../turn/errors.js';
import { turnIceServers } from '../../turn/ice-servers.js';
import { RedisRoomStore } from '../cluster/redis-store.js';
import { DEFAULT_LIMITS, listenSignaling } from '../server/index.js';
import { InvalidOptionsError } from '../server/options.js';
import { bareTrustProxy, COTURN_OPTIONS, ConfigError, LIMIT_KEYS, type OptionSpec, resolveConfig, SERVE_OPTIONS, TURN_OPTIONS } from './config.js';
import { helpText } from './help.js';
import { defaultWebRoot, staticFiles } from './static.js';
import { type EmbeddedTurn, startEmbeddedTurn, turnListenAddress, turnUrlHost } from './turn.js';

type Config = Record<string, unknown>;

function makeLogger(cfg: Config): Logger {
  // Logs go to stderr so stdout carries only the start lines (easy to script against).
  // Synchronous: with an async destination, a log line still in flight when process.exit()
  // runs is flushed by sonic-boom's flushSync, which retries EPIPE forever, so a server
  // whose stderr reader had gone (its parent died, `| head`) never exited on SIGTERM.
  return pino({ name: 'rallypoint', level: cfg.logLevel as string }, pino.destination({ dest: 2, sync: true }));
}

/** The host named in the welcome's STUN/TURN URLs, if the options fix one (signaling/cli/turn.ts turnUrlHost). */
function publicHostOption(cfg: Config): { publicHost?: string } {
  const host = turnUrlHost(cfg.turnPublicHost as string | undefined, cfg.turnHost as string | undefined);
  return host !== undefined ? { publicHost: host } : {};
}

/** The embedded TURN server from the turn-* options (shared by serve and turn). */
function embeddedTurn(cfg: Config, secret: string, host: string | undefined, registry: Registry): Promise<EmbeddedTurn> {
  return startEmbeddedTurn({
    secret,
    listen: turnListenAddress(cfg.turnHost as string | undefined, host),
    port: cfg.turnPort as number,
    relayIp: cfg.turnRelayIp as string | undefined,
    externalIp: cfg.turnExternalIp as string | undefined,
    allow: cfg.turnAllow as string[] | undefined,
    realm: cfg.turnRealm as string,
    registry,
    // One notion of "one source" for signaling and TURN (`rallypoint turn` has no such flag: its default).
    ipv6PrefixLength: cfg.ipv6PrefixLength as number | undefined,
  });
}

/**
 * SIGTERM/SIGINT: `close` (bounded by `timeoutMs` plus 5 s), then exit. A second signal, or
 * a hung close, must not keep the process alive forever.
 */
function onShutdown(logger: Logger, timeoutMs: number, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const hard = setTimeout(() => process.exit(1), timeoutMs + 5_000);
    hard.unref();
    close().then(
      () => {
        logger.info('stopped');
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function serve(flags: Record<string, string | boolean | undefined>): Promise<void> {
  const cfg = resolveConfig(SERVE_OPTIONS, flags, process.env);
  const logger = makeLogger(cfg);
  const limits: Record<string, number> = {};
  for (const key of LIMIT_KEYS) if (typeof cfg[key] === 'number') limits[key] = cfg[key] as number;
  const turnUrls = cfg.turnUrls as string[] | undefined;
  if (turnUrls !== undefined && cfg.turnSecret === undefined) {
    throw new ConfigError('missing-secret', '--turn-urls (TURN_URLS) hands out credentials for an external TURN server: it needs its secret in --turn-secret or TURN_SECRET');
  }
  // Without TURN_SECRET a fresh one per start: the credentials handed out and the TURN
  // server agree, and there is never an open relay. Only coturn needs it configured.
  const secret = (cfg.turnSecret as string | undefined) ?? randomBytes(32).toString('base64url');
  const registry = new Registry();
  const host = cfg.host as string | undefined;
  // TURN first: a taken UDP port fails the start before anyone is told we are listening.
  const turn = cfg.turn === 'on' && turnUrls === undefined ? await embeddedTurn(cfg, secret, host, registry) : undefined;
  const iceServers =
    turnUrls !== undefined
      ? turnIceServers({ secret, ttl: cfg.turnTtl as number, urls: turnUrls })
      : turn !== undefined
        ? turnIceServers({ secret, ttl: cfg.turnTtl as number, port: turn.port, ...publicHostOption(cfg) })
        : undefined;
  if (turn !== undefined && cfg.turnSecret === undefined) logger.info('TURN secret generated at start (set TURN_SECRET to share one with coturn)');
  const redis = cfg.redis as string[] | undefined;
  if (redis !== undefined && redis.length > 1 && cfg.redisCluster !== 'on') throw new ConfigError('conflicting-options', '--redis (REDIS_URL) takes one URL, or several with --redis-cluster on');
  const store =
    redis === undefined
      ? undefined
      : new RedisRoomStore({
          redis: cfg.redisCluster === 'on' ? { cluster: redis } : (redis[0] as string),
          prefix: cfg.redisPrefix as string,
          ...(cfg.nodeId !== undefined ? { nodeId: cfg.nodeId as string } : {}),
        });
  let listening: Awaited<ReturnType<typeof listenSignaling>> | undefined;
  try {
    listening = await listenSignaling({
      ...(store !== undefined ? { store } : {}),
      port: cfg.port as number,
      ...(host !== undefined ? { host } : {}),
      path: cfg.path as string,
      ...(cfg.origins !== undefined ? { allowedOrigins: cfg.origins as '*' | string[] } : {}),
      ...(cfg.secret !== undefined ? { secret: cfg.secret as string } : {}),
      ...(iceServers !== undefined ? { iceServers } : {}),
      trustProxy: cfg.trustProxy as boolean | number | string[],
      ...(cfg.allowedHosts !== undefined ? { allowedHosts: cfg.allowedHosts as '*' | string[] } : {}),
      ...(cfg.tokenAudience !== undefined ? { tokenAudience: cfg.tokenAudience as string[] } : {}),
      ...(cfg.tokenIssuer !== undefined ? { tokenIssuer: cfg.tokenIssuer as string[] } : {}),
      ...(cfg.metricsToken !== undefined ? { metricsToken: cfg.metricsToken as string } : {}),
      ...(cfg.metricsPort !== undefined ? { metricsPort: cfg.metricsPort as number } : {}),
      ...(cfg.metricsHost !== undefined ? { metricsHost: cfg.metricsHost as string } : {}),
      // --relay is the deprecated name: --data-fallback wins when both are set (an old
      // RALLYPOINT_RELAY in a deployment's environment must not override a new flag).
      dataFallback: (cfg.dataFallback ?? cfg.relay ?? 'on') === 'on',
      limits,
      logger,
      registry,
      defaultMetrics: true,
      // The demo and the browser bundle (dist/web, built by `npm run build`) at `/`.
      onRequest: staticFiles(defaultWebRoot()),
    });
    if (store !== undefined) {
      // A node that cannot reach Redis at start is misconfigured: say so instead of serving.
      await Promise.race([
        store.connect(),
        new Promise((_, reject) => setTimeout(() => reject(new ConfigError('redis-unreachable', `cannot reach Redis at ${redis?.join(',') ?? ''}`)), 5_000).unref()),
      ]).catch(async (err: unknown) => {
        await listening?.close({ timeoutMs: 0 });
        throw err instanceof ConfigError ? err : new ConfigError('redis-unreachable', `cannot reach Redis at ${redis?.join(',') ?? ''}: ${(err as Error).message}`, { cause: err });
      });
    }
  } catch (err) {
    await turn?.server.close();
    throw err;
  }
  const signaling = listening;
  // In a cluster SIGTERM drains: the clients resume on the other nodes (a rolling deploy).
  const drainMs = store !== undefined ? (limits.resumeGraceMs ?? DEFAULT_LIMITS.resumeGraceMs) + 2_000 : 0;
  onShutdown(logger, (cfg.shutdownTimeoutMs as number) + drainMs, async () => {
    if (store !== undefined) await signaling.server.drain({ timeoutMs: drainMs });
    await signaling.close({ timeoutMs: cfg.shutdownTimeoutMs as number });
    await turn?.server.close();
  });
  // Only now: whoever reads these lines may signal us at once (the handlers must be in place).
  // One write: a reader that takes the first line and goes (`| head -1`) gets both at once.
  printStartLines([
    `rallypoint listening on ${signaling.url} (signaling ${signaling.wsUrl})`,
    ...(turn ? [turn.startLine] : []),
    ...(signaling.metricsUrl !== undefined ? [`rallypoint metrics on ${signaling.metricsUrl}`] : []),
  ]);
}

/**
 * Stdout carries only the start lines. A reader that went away makes the write fail with
 * EPIPE, emitted as an 'error' event that would otherwise crash a server that is fine.
 */
function printStartLines(lines: string[]): void {
  process.stdout.on('error', () => {});
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** `rallypoint turn`: the embedded TURN server alone (credentials minted elsewhere with TURN_SECRET). */
async function serveTurn(flags: Record<string, string | boolean | undefined>): Promise<void> {
  const cfg = resolveConfig(TURN_OPTIONS, flags, process.env);
  const logger = makeLogger(cfg);
  const turn = await embeddedTurn(cfg, cfg.turnSecret as string, undefined, new Registry());
  onShutdown(logger, 0, () => turn.server.close());
  printStartLines([turn.startLine]);
}

/** `rallypoint coturn-config`: prints a turnserver.conf on stdout. */
function printCoturnConfig(flags: Record<string, string | boolean | undefined>): void {
  if (flags.secret === undefined && !process.env.TURN_SECRET) {
    throw new ConfigError('missing-secret', 'coturn-config needs the TURN secret: pass --secret or set TURN_SECRET (at least 16 characters)');
  }
  const cfg = resolveConfig(COTURN_OPTIONS, flags, process.env);
  process.stdout.write(
    coturnConfig({
      secret: cfg.secret as string,
      realm: cfg.realm as string,
      ...(cfg.listeningIps !== undefined ? { listeningIps: cfg.listeningIps as string[] } : {}),
      listeningPort: cfg.listeningPort as number,
      ...(cfg.relayIp !== undefined ? { relayIp: cfg.relayIp as string } : {}),
      ...(cfg.externalIp !== undefined ? { externalIp: cfg.externalIp as string } : {}),
      ...(cfg.allow !== undefined ? { allow: cfg.allow as string[] } : {}),
      userQuota: cfg.userQuota as number,
      totalQuota: cfg.totalQuota as number,
    }),
  );
}

const COMMANDS: Record<string, Record<string, OptionSpec>> = { serve: SERVE_OPTIONS, turn: TURN_OPTIONS, 'coturn-config': COTURN_OPTIONS };

async function main(argv: string[]): Promise<number> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const specs of Object.values(COMMANDS)) {
    for (const spec of Object.values(specs)) options[spec.flag] = { type: spec.boolean ? 'boolean' : 'string' };
  }
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: typeof options; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: bareTrustProxy(argv), options, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`rallypoint: ${(err as Error).message}\n\n${helpText()}\n`);
    return 2;
  }
  const [command = 'help', ...extra] = parsed.positionals;
  if (parsed.values.help || command === 'help') {
    process.stdout.write(`${helpText()}\n`);
    return 0;
  }
  if (extra.length) {
    process.stderr.write(`rallypoint: unexpected argument ${extra[0]}\n`);
    return 2;
  }
  const specs = COMMANDS[command];
  if (specs === undefined) {
    process.stderr.write(`rallypoint: unknown command ${command}\n\n${helpText()}\n`);
    return 2;
  }
  // Each command takes only its own options.
  const known = new Set(['help', ...Object.values(specs).map((s) => s.flag)]);
  const foreign = Object.keys(parsed.values).find((flag) => !known.has(flag));
  if (foreign !== undefined) {
    process.stderr.write(`rallypoint: option --${foreign} does not apply to ${command}\n\n${helpText()}\n`);
    return 2;
  }
  try {
    if (command === 'coturn-config') {
      printCoturnConfig(parsed.values as Record<string, string | boolean | undefined>);
      return 0;
    }
    if (command === 'turn') await serveTurn(parsed.values as Record<string, string | boolean | undefined>);
    else await serve(parsed.values as Record<string, string | boolean | undefined>);
    return -1; // keep running
  } catch (err) {
    if (err instanceof TurnError && err.code === 'listen-failed') {
      process.stderr.write(`rallypoint: TURN: ${err.message}\n`);
      return 1;
    }
    if (err instanceof ConfigError || err instanceof InvalidOptionsError || err instanceof TurnError) {
      process.stderr.write(`rallypoint: ${err.message}\n`);
      return 2;
    }
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      process.stderr.write(`rallypoint: ${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`rallypoint: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
