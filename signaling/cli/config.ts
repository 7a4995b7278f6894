import { isIP } from 'node:net';
import { z } from 'zod';
import { DEFAULT_TURN_TTL } from '../../turn/ice-servers.js';
import { DEFAULT_TURN_QUOTAS } from '../../turn/quotas.js';
import { DEFAULT_LIMITS, DEFAULT_PATH } from '../protocol/index.js';
import { isCidr } from '../server/source.js';

/** One CLI option: its flag, its environment variable, and how to read it. */

/** `*` (anything), or a comma-separated list (blanks around items and empty items ignored). */
const starOrList = z
  .string()
  .optional()
  .transform((s) =>
    s === undefined
      ? undefined
      : s.trim() === '*'
        ? ('*' as const)
        : s
            .split(',')
            .map((item) => item.trim())
            .filter(Boolean),
  );

export interface OptionSpec {
  flag: string;
  env: string;
  description: string;
  defaultText: string;
  schema: z.ZodType;
  boolean?: boolean;
}

const intFrom = (min: number) => z.coerce.number({ message: 'must be a number' }).int('must be a whole number').min(min);
const limit = (key: keyof typeof DEFAULT_LIMITS, flag: string, env: string, description: string, min = 1): [string, OptionSpec] => [
  key,
  { flag, env, description, defaultText: String(DEFAULT_LIMITS[key]), schema: intFrom(min).optional() },
];

const ipSchema = z.string().refine((s) => isIP(s) !== 0, 'must be an IP address');
const cidrSchema = z.string().refine((s) => {
  const [addr, len, extra] = s.split('/');
  if (addr === undefined || extra !== undefined || isIP(addr) === 0) return false;
  if (len === undefined) return true;
  return /^\d+$/.test(len) && Number(len) <= (isIP(addr) === 4 ? 32 : 128);
}, 'must be a CIDR (address/prefix)');

const csv = <T extends z.ZodType<unknown, string>>(item: T) =>
  z
    .string()
    .optional()
    .transform((s) =>
      s === undefined
        ? undefined
        : s
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean),
    )
    .pipe(z.array(item).optional());

/** The embedded TURN server's options: shared by `serve` and `turn`. */
const TURN_OPTIONS_COMMON: Record<string, OptionSpec> = {
  turnPort: { flag: 'turn-port', env: 'TURN_PORT', description: 'UDP port of the embedded TURN/STUN server (0 picks a free one)', defaultText: '3478', schema: intFrom(0).max(65535).default(3478) },
  turnHost: { flag: 'turn-host', env: 'TURN_HOST', description: 'address the TURN server listens on', defaultText: '--host, else all interfaces', schema: ipSchema.optional() },
  turnRelayIp: {
    flag: 'turn-relay-ip',
    env: 'TURN_RELAY_IP',
    description: 'address relay sockets bind to',
    defaultText: "the TURN address, else this machine's first non-loopback IPv4",
    schema: ipSchema.optional(),
  },
  turnExternalIp: { flag: 'turn-external-ip', env: 'TURN_EXTERNAL_IP', description: 'relay address advertised to clients (hosts behind 1:1 NAT)', defaultText: 'none', schema: ipSchema.optional() },
  turnAllow: {
    flag: 'turn-allow',
    env: 'TURN_ALLOW',
    description: 'peer CIDRs relayed to despite the deny list (LANs, labs), comma-separated',
    defaultText: 'none',
    schema: csv(cidrSchema),
  },
  turnRealm: {
    flag: 'turn-realm',
    env: 'TURN_REALM',
    description: 'TURN realm',
    defaultText: 'rallypoint',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9.\-_]+$/, 'letters, digits, ".", "-" and "_" only')
      .default('rallypoint'),
  },
};

export const SERVE_OPTIONS: Record<string, OptionSpec> = {
  port: { flag: 'port', env: 'PORT', description: 'TCP port (0 picks a free one)', defaultText: '8080', schema: intFrom(0).max(65535).default(8080) },
  host: { flag: 'host', env: 'HOST', description: 'interface to listen on', defaultText: 'all interfaces', schema: z.string().min(1).optional() },
  path: {
    flag: 'path',
    env: 'RALLYPOINT_PATH',
    description: 'WebSocket path',
    defaultText: DEFAULT_PATH,
    schema: z
      .string()
      .regex(/^\/[^?#\s]*$/, 'must start with /')
      .default(DEFAULT_PATH),
  },
  origins: {
    flag: 'origins',
    env: 'RALLYPOINT_ORIGINS',
    description: 'allowed browser origins, comma-separated, or * for any',
    defaultText: "the server's own origin",
    schema: starOrList,
  },
  secret: {
    flag: 'secret',
    env: 'RALLYPOINT_SECRET',
    description: 'HMAC secret; when set, clients need a signed token',
    defaultText: 'none (no auth)',
    schema: z.string().min(16, 'must be at least 16 characters').optional(),
  },
  allowedHosts: {
    flag: 'allowed-hosts',
    env: 'RALLYPOINT_ALLOWED_HOSTS',
    description:
      'host names browsers may use to reach this server (DNS-rebinding check), comma-separated; .example.com allows subdomains; * turns the check off. Set, it is checked on every browser upgrade',
    defaultText: 'localhost, IP literals, this machine (and NAME.local) and --host, checked only on upgrades arriving on a loopback/private address, not via --trust-proxy',
    schema: starOrList,
  },
  tokenAudience: {
    flag: 'token-audience',
    env: 'RALLYPOINT_TOKEN_AUDIENCE',
    description: "tokens' aud claim must name one of these, comma-separated (needs --secret)",
    defaultText: 'not checked',
    schema: csv(z.string().min(1)),
  },
  tokenIssuer: {
    flag: 'token-issuer',
    env: 'RALLYPOINT_TOKEN_ISSUER',
    description: "tokens' iss claim must be one of these, comma-separated (needs --secret)",
    defaultText: 'not checked',
    schema: csv(z.string().min(1)),
  },
  trustProxy: {
    flag: 'trust-proxy',
    env: 'RALLYPOINT_TRUST_PROXY',
    description: 'take client IPs from X-Forwarded-For: a count of proxies you run (true = 1), or their addresses/CIDRs, comma-separated',
    defaultText: 'false',
    schema: z
      .string()
      .default('false')
      .transform((v, ctx) => {
        const s = v.trim();
        if (s === 'false' || s === '0') return false;
        if (s === 'true') return 1;
        if (/^\d+$/.test(s) && Number(s) <= 32) return Number(s);
        const list = s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
        if (list.length > 0 && list.every(isCidr)) return list;
        ctx.addIssue({ code: 'custom', message: 'must be true, false, a hop count (0-32) or addresses/CIDRs, comma-separated' });
        return z.NEVER;
      }),
  },
  metricsToken: {
    flag: 'metrics-token',
    env: 'RALLYPOINT_METRICS_TOKEN',
    description: 'GET /metrics needs Authorization: Bearer <token>',
    defaultText: 'none (public)',
    schema: z.string().min(16, 'must be at least 16 characters').optional(),
  },
  metricsPort: {
    flag: 'metrics-port',
    env: 'RALLYPOINT_METRICS_PORT',
    description: 'serve /metrics on this port instead of --port (0 picks a free one)',
    defaultText: 'the signaling port',
    schema: intFrom(0).max(65535).optional(),
  },
  metricsHost: {
    flag: 'metrics-host',
    env: 'RALLYPOINT_METRICS_HOST',
    description: 'interface of the --metrics-port listener',
    defaultText: '127.0.0.1 (loopback only)',
    schema: z.string().min(1).optional(),
  },
  redis: {
    flag: 'redis',
    env: 'REDIS_URL',
    description: 'run as one node of a cluster sharing rooms over Redis (7.0+): redis://[user:pass@]host:port, or with --redis-cluster the comma-separated URLs of some Redis Cluster masters',
    defaultText: 'none (one process, rooms in memory)',
    schema: csv(z.string().regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL')),
  },
  redisCluster: {
    flag: 'redis-cluster',
    env: 'RALLYPOINT_REDIS_CLUSTER',
    description: '--redis names a Redis Cluster (sharded pub/sub, keys by hash tag): on or off',
    defaultText: 'off',
    schema: z.enum(['on', 'off']).default('off'),
  },
  nodeId: {
    flag: 'node-id',
    env: 'RALLYPOINT_NODE_ID',
    description: "this node's id in the cluster, unique per running process ([A-Za-z0-9_.-], 1-64)",
    defaultText: 'random per start',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 of [A-Za-z0-9_.-]')
      .optional(),
  },
  redisPrefix: {
    flag: 'redis-prefix',
    env: 'RALLYPOINT_REDIS_PREFIX',
    description: 'prefix of every Redis key and channel (deployments sharing one Redis need different ones)',
    defaultText: 'rp',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,32}$/, 'must be 1-32 of [A-Za-z0-9_.-]')
      .default('rp'),
  },
  logLevel: {
    flag: 'log-level',
    env: 'LOG_LEVEL',
    description: 'fatal, error, warn, info, debug, trace or silent',
    defaultText: 'info',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  },
  shutdownTimeoutMs: {
    flag: 'shutdown-timeout-ms',
    env: 'RALLYPOINT_SHUTDOWN_TIMEOUT_MS',
    description: 'how long SIGTERM waits for clients before terminating them',
    defaultText: '5000',
    schema: intFrom(0).default(5000),
  },
  turn: {
    flag: 'turn',
    env: 'RALLYPOINT_TURN',
    description: 'run the embedded TURN server: on or off',
    defaultText: 'on',
    schema: z.enum(['on', 'off']).default('on'),
  },
  dataFallback: {
    flag: 'data-fallback',
    env: 'RALLYPOINT_DATA_FALLBACK',
    description: "carry peers' data over the signaling connection when their ICE fails (relay frames): on or off",
    defaultText: 'on',
    schema: z.enum(['on', 'off']).optional(),
  },
  relay: {
    flag: 'relay',
    env: 'RALLYPOINT_RELAY',
    description: 'deprecated: the old name of --data-fallback (which wins when both are set)',
    defaultText: 'on',
    schema: z.enum(['on', 'off']).optional(),
  },
  turnUrls: {
    flag: 'turn-urls',
    env: 'TURN_URLS',
    description: 'URLs of an external TURN server (coturn) to hand out instead; needs TURN_SECRET',
    defaultText: 'none (the embedded server)',
    schema: csv(z.string().regex(/^(stun|stuns|turn|turns):\S+$/, 'must be a stun:, stuns:, turn: or turns: URI')),
  },
  turnPublicHost: {
    flag: 'turn-public-host',
    env: 'TURN_PUBLIC_HOST',
    description: 'host name put in the TURN URLs handed out',
    defaultText: 'the Host header the client used',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9.:-]+$/, 'must be a host name or an IP address')
      .optional(),
  },
  turnSecret: {
    flag: 'turn-secret',
    env: 'TURN_SECRET',
    description: 'TURN REST secret shared with coturn',
    defaultText: 'generated at start',
    schema: z.string().min(16, 'must be at least 16 characters').optional(),
  },
  turnTtl: {
    flag: 'turn-ttl',
    env: 'TURN_TTL',
    description: 'seconds a minted TURN credential is valid',
    defaultText: String(DEFAULT_TURN_TTL),
    schema: intFrom(60).default(DEFAULT_TURN_TTL),
  },
  ...TURN_OPTIONS_COMMON,
  ...Object.fromEntries([
    limit('maxConnections', 'max-connections', 'RALLYPOINT_MAX_CONNECTIONS', 'open connections'),
    limit('maxConnectionsPerIp', 'max-connections-per-ip', 'RALLYPOINT_MAX_CONNECTIONS_PER_IP', 'connections per client IP (0 = no limit)', 0),
    limit('ipv6PrefixLength', 'ipv6-prefix-length', 'RALLYPOINT_IPV6_PREFIX_LENGTH', 'IPv6 clients count per prefix of this length for --max-connections-per-ip and the TURN per-IP limits (1-128)'),
    limit('joinTimeoutMs', 'join-timeout-ms', 'RALLYPOINT_JOIN_TIMEOUT_MS', 'a connection not in a room this long is closed (4008)'),
    limit('maxBufferedBytes', 'max-buffered-bytes', 'RALLYPOINT_MAX_BUFFERED_BYTES', 'unsent bytes held per connection; more closes it (1013)'),
    limit('slowReaderCloseMs', 'slow-reader-close-ms', 'RALLYPOINT_SLOW_READER_CLOSE_MS', 'a connection closed with 1013 that has not read its backlog this long is terminated (ms)'),
    limit('pollHoldMs', 'poll-hold-ms', 'RALLYPOINT_POLL_HOLD_MS', 'HTTP transports: a long-poll with nothing to say is answered after this long (ms)'),
    limit('sseKeepaliveMs', 'sse-keepalive-ms', 'RALLYPOINT_SSE_KEEPALIVE_MS', 'HTTP transports: an idle SSE stream gets a comment this often (ms)'),
    limit('maxPostBytes', 'max-post-bytes', 'RALLYPOINT_MAX_POST_BYTES', 'HTTP transports: largest POST body (bytes), more gets 413'),
    limit('maxRooms', 'max-rooms', 'RALLYPOINT_MAX_ROOMS', 'rooms'),
    limit('maxPeersPerRoom', 'max-peers-per-room', 'RALLYPOINT_MAX_PEERS_PER_ROOM', 'peers per room'),
    limit('maxMessageBytes', 'max-message-bytes', 'RALLYPOINT_MAX_MESSAGE_BYTES', 'largest message (bytes)'),
    limit('maxFrameBytes', 'max-frame-bytes', 'RALLYPOINT_MAX_FRAME_BYTES', 'hard frame limit (bytes), closes with 1009'),
    limit('messagesPerSecond', 'messages-per-second', 'RALLYPOINT_MESSAGES_PER_SECOND', 'sustained messages/s per connection'),
    limit('messageBurst', 'message-burst', 'RALLYPOINT_MESSAGE_BURST', 'message burst per connection'),
    limit('resumeGraceMs', 'resume-grace-ms', 'RALLYPOINT_RESUME_GRACE_MS', 'how long a dropped peer may resume (ms)', 0),
    limit('pingIntervalMs', 'ping-interval-ms', 'RALLYPOINT_PING_INTERVAL_MS', 'heartbeat ping interval (ms)'),
    limit('relayMessagesPerSecond', 'relay-messages-per-second', 'RALLYPOINT_RELAY_MESSAGES_PER_SECOND', 'sustained relay frames/s per connection'),
    limit('relayMessageBurst', 'relay-message-burst', 'RALLYPOINT_RELAY_MESSAGE_BURST', 'relay frame burst per connection'),
    limit('relayBytesPerSecond', 'relay-bytes-per-second', 'RALLYPOINT_RELAY_BYTES_PER_SECOND', 'sustained relayed bytes/s per connection'),
    limit('relayBytesBurst', 'relay-bytes-burst', 'RALLYPOINT_RELAY_BYTES_BURST', 'relayed byte burst per connection'),
  ]),
};

/** Options of `rallypoint coturn-config` (prints a turnserver.conf for coturn). */
export const COTURN_OPTIONS: Record<string, OptionSpec> = {
  secret: {
    flag: 'secret',
    env: 'TURN_SECRET',
    description: 'TURN REST secret shared with the signaling server (required)',
    defaultText: 'none (required)',
    schema: z
      .string({ message: 'required: the TURN secret (--secret or TURN_SECRET)' })
      .min(16, 'must be at least 16 characters')
      .refine((s) => !/[\r\n]/.test(s), 'must not contain line breaks'),
  },
  realm: {
    flag: 'realm',
    env: 'TURN_REALM',
    description: 'TURN realm',
    defaultText: 'rallypoint',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9.\-_]+$/, 'letters, digits, ".", "-" and "_" only')
      .default('rallypoint'),
  },
  listeningIps: {
    flag: 'listening-ip',
    env: 'TURN_LISTENING_IP',
    description: 'interfaces to listen on, comma-separated',
    defaultText: 'all interfaces',
    schema: csv(ipSchema),
  },
  listeningPort: {
    flag: 'listening-port',
    env: 'TURN_LISTENING_PORT',
    description: 'UDP/TCP port',
    defaultText: '3478',
    schema: intFrom(1).max(65535).default(3478),
  },
  relayIp: { flag: 'relay-ip', env: 'TURN_RELAY_IP', description: 'address relay sockets bind to', defaultText: 'coturn picks', schema: ipSchema.optional() },
  externalIp: {
    flag: 'external-ip',
    env: 'TURN_EXTERNAL_IP',
    description: 'public address behind 1:1 NAT (public or public/private)',
    defaultText: 'none',
    schema: z
      .string()
      .refine((s) => {
        const parts = s.split('/');
        return parts.length <= 2 && parts.every((p) => isIP(p) !== 0);
      }, 'must be an IP address or public/private')
      .optional(),
  },
  allow: {
    flag: 'allow',
    env: 'TURN_ALLOW',
    description: 'peer CIDRs relayed to despite the deny list, comma-separated',
    defaultText: 'none',
    schema: csv(cidrSchema),
  },
  // Same defaults as the embedded TURN server, so both deployments behave alike.
  userQuota: {
    flag: 'user-quota',
    env: 'TURN_USER_QUOTA',
    description: 'allocations per user',
    defaultText: String(DEFAULT_TURN_QUOTAS.maxAllocationsPerUser),
    schema: intFrom(1).default(DEFAULT_TURN_QUOTAS.maxAllocationsPerUser),
  },
  totalQuota: {
    flag: 'total-quota',
    env: 'TURN_TOTAL_QUOTA',
    description: 'allocations in total',
    defaultText: String(DEFAULT_TURN_QUOTAS.maxAllocations),
    schema: intFrom(1).default(DEFAULT_TURN_QUOTAS.maxAllocations),
  },
};

/** Options of `rallypoint turn` (the embedded TURN server alone). */
export const TURN_OPTIONS: Record<string, OptionSpec> = {
  turnSecret: {
    flag: 'turn-secret',
    env: 'TURN_SECRET',
    description: 'TURN REST secret shared with the signaling server (required)',
    defaultText: 'none (required)',
    schema: z.string({ message: 'required: the TURN secret (--turn-secret or TURN_SECRET)' }).min(16, 'must be at least 16 characters'),
  },
  ...TURN_OPTIONS_COMMON,
  logLevel: SERVE_OPTIONS.logLevel!,
};

export const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as (keyof typeof DEFAULT_LIMITS)[];

/**
 * Why the CLI refused its configuration:
 * - invalid-value: a flag or environment variable with a value its option does not take;
 * - conflicting-options: options that cannot go together (several Redis URLs without --redis-cluster on);
 * - missing-secret: a command or option that needs a TURN secret without one;
 * - redis-unreachable: Redis did not answer at start.
 */
export type ConfigErrorCode = 'invalid-value' | 'conflicting-options' | 'missing-secret' | 'redis-unreachable';

/** Thrown for a bad option value; the CLI prints it and exits 2. */
export class ConfigError extends Error {
  constructor(
    readonly code: ConfigErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ConfigError';
  }

  /** @deprecated The code before the kebab-case convention of every rallypoint error (`ERR_RALLYPOINT_CONFIG`). */
  get legacyCode(): 'ERR_RALLYPOINT_CONFIG' {
    return 'ERR_RALLYPOINT_CONFIG';
  }
}

/** Merges flags over environment variables, validates each, and returns typed values. */
export function resolveConfig(specs: Record<string, OptionSpec>, flags: Record<string, string | boolean | undefined>, env: Record<string, string | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, spec] of Object.entries(specs)) {
    const fromFlag = flags[spec.flag];
    const raw = fromFlag ?? (env[spec.env] === '' ? undefined : env[spec.env]);
    const parsed = spec.schema.safeParse(raw);
    if (parsed.success) out[key] = parsed.data;
    else {
      const source = fromFlag !== undefined ? `--${spec.flag}` : spec.env;
      problems.push(`${source}=${String(raw)}: ${parsed.error.issues.map((i) => i.message).join(', ')}`);
    }
  }
  if (problems.length) throw new ConfigError('invalid-value', `invalid configuration:\n  ${problems.join('\n  ')}`);
  return out;
}

/**
 * `--trust-proxy` used to be a switch: a bare `--trust-proxy` still means `true`, one trusted
 * hop. parseArgs cannot say "a string option whose value is optional", so argv is rewritten
 * before parsing: `--trust-proxy` becomes `--trust-proxy=true` when it is last, when the
 * next argument is another option (`-...`), or when the next argument cannot be its value
 * (anything but hop counts, addresses/CIDR lists, `true`/`false`: say the `serve` command
 * or another positional after it). `--trust-proxy=...` and `--trust-proxy VALUE` are left as
 * they are (a bad VALUE is then refused by the option's schema, exit code 2).
 */
export function bareTrustProxy(argv: readonly string[]): string[] {
  return argv.map((arg, i) => {
    if (arg !== '--trust-proxy') return arg;
    const next = argv[i + 1];
    return next === undefined || next.startsWith('-') || !/^[0-9A-Fa-f:.,/[\]]+$|^(true|false)$/.test(next) ? '--trust-proxy=true' : arg;
  });
}
