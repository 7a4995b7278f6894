#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { listenSignaling } from '../server/index.js';
import { InvalidOptionsError } from '../server/options.js';
import { coturnConfig } from '../../turn/coturn-config.js';
import { TurnError } from '../../turn/errors.js';
import { COTURN_OPTIONS, ConfigError, LIMIT_KEYS, SERVE_OPTIONS, resolveConfig, type OptionSpec } from './config.js';
import { helpText } from './help.js';
import { defaultWebRoot, staticFiles } from './static.js';

async function serve(flags: Record<string, string | boolean | undefined>): Promise<void> {
  const cfg = resolveConfig(SERVE_OPTIONS, flags, process.env);
  // Logs go to stderr so stdout carries only the start line (easy to script against).
  // Synchronous: with an async destination, a log line still in flight when process.exit()
  // runs is flushed by sonic-boom's flushSync, which retries EPIPE forever, so a server
  // whose stderr reader had gone (its parent died, `| head`) never exited on SIGTERM.
  const logger = pino({ name: 'rallypoint', level: cfg.logLevel as string }, pino.destination({ dest: 2, sync: true }));
  const limits: Record<string, number> = {};
  for (const key of LIMIT_KEYS) if (typeof cfg[key] === 'number') limits[key] = cfg[key] as number;
  const listening = await listenSignaling({
    port: cfg.port as number,
    ...(cfg.host !== undefined ? { host: cfg.host as string } : {}),
    path: cfg.path as string,
    ...(cfg.origins !== undefined ? { allowedOrigins: cfg.origins as '*' | string[] } : {}),
    ...(cfg.secret !== undefined ? { secret: cfg.secret as string } : {}),
    trustProxy: cfg.trustProxy as boolean,
    limits,
    logger,
    defaultMetrics: true,
    // The demo and the browser bundle (dist/web, built by `npm run build`) at `/`.
    onRequest: staticFiles(defaultWebRoot()),
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // A second signal, or a hung close, must not keep the process alive forever.
    const hard = setTimeout(() => process.exit(1), (cfg.shutdownTimeoutMs as number) + 5_000);
    hard.unref();
    listening.close({ timeoutMs: cfg.shutdownTimeoutMs as number }).then(
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
  // Only now: whoever reads this line may signal us at once (the handlers must be in place).
  process.stdout.write(`rallypoint listening on ${listening.url} (signaling ${listening.wsUrl})\n`);
}

/** `rallypoint coturn-config`: prints a turnserver.conf on stdout. */
function printCoturnConfig(flags: Record<string, string | boolean | undefined>): void {
  if (flags.secret === undefined && !process.env.TURN_SECRET) {
    throw new ConfigError('coturn-config needs the TURN secret: pass --secret or set TURN_SECRET (at least 16 characters)');
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

const COMMANDS: Record<string, Record<string, OptionSpec>> = { serve: SERVE_OPTIONS, 'coturn-config': COTURN_OPTIONS };

async function main(argv: string[]): Promise<number> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const specs of Object.values(COMMANDS)) {
    for (const spec of Object.values(specs)) options[spec.flag] = { type: spec.boolean ? 'boolean' : 'string' };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
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
    await serve(parsed.values as Record<string, string | boolean | undefined>);
    return -1; // keep running
  } catch (err) {
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
