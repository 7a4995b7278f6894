import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { DEFAULT_LIMITS, DEFAULT_PATH, IceServer, type Limits } from '../protocol/index.js';
import type { VerifyHook } from './auth.js';
import type { Clock } from './clock.js';
import { defaultAllowedHosts } from './host-check.js';
import type { RoomStore } from './rooms.js';
import { isCidr, type ProxyTrust, resolveProxyTrust, type TrustProxy } from './source.js';

export type IceServersOption = IceServer[] | ((ctx: { peerId: string; request: IncomingMessage }) => IceServer[]);

export interface SignalingServerOptions {
  /** WebSocket path. Default `/ws`. */
  path?: string;
  /**
   * Origins allowed to open a WebSocket. Default: only the server's own origin (the
   * request's Host). `'*'` allows every origin. Requests without an Origin header (not
   * browsers) are always allowed: Origin protects browsers, it authenticates nobody.
   */
  allowedOrigins?: '*' | string[];
  /**
   * Host names browsers may reach the server by (DNS-rebinding protection): a browser's
   * upgrade whose Host is not one of them is refused with 403 `bad-host` (and a warning
   * logged once per Host). Always allowed: IP literals, `localhost` and names under
   * `.localhost`, this machine's host name and `<name>.local`, and the `host` given to
   * `listenSignaling`. Entries starting with a dot allow a domain and every name under it.
   * `'*'` turns the check off. Checked on upgrades that carry an Origin. When set, always;
   * by default only where rebinding is a threat: with the default (same-origin)
   * `allowedOrigins`, on a connection that arrived on a loopback/private/link-local local
   * address and not from a trusted proxy (`trustProxy`) that forwarded it.
   */
  allowedHosts?: '*' | string[];
  /** HMAC secret: when set, every upgrade needs a valid HS256 token (see `signToken`). */
  secret?: string;
  /** When set (needs `secret`), a token's `aud` claim must name one of these (RFC 7519 §4.1.3). */
  tokenAudience?: string | string[];
  /** When set (needs `secret`), a token's `iss` claim must be one of these (RFC 7519 §4.1.1). */
  tokenIssuer?: string | string[];
  /** Custom upgrade check, run after the token check. */
  verify?: VerifyHook;
  /** Limits; every one has a documented default (PROTOCOL.md). */
  limits?: Partial<Limits>;
  /** ICE servers handed to each peer in `welcome.iceServers`. */
  iceServers?: IceServersOption;
  /** Rooms and delivery; default in-memory. */
  store?: RoomStore;
  /** pino logger, or false for none. Default: pino at `info` to stdout. */
  logger?: Logger | false;
  /** Timers; injectable for tests. */
  clock?: Clock;
  /**
   * Take the client IP from X-Forwarded-For, only behind proxies you run: a hop count (the
   * last N entries were appended by your proxies; `true` is 1), or the proxies' addresses
   * or CIDRs (entries are read from the right, skipping those). Default false: the socket's peer.
   */
  trustProxy?: TrustProxy;
  /**
   * `/metrics` needs `Authorization: Bearer <metricsToken>` (401 otherwise). Scrapes cost
   * CPU and show the server's load: keep them to your monitoring.
   */
  metricsToken?: string;
  /** Serve `/metrics` from `handleHttp` (default true); false when it is served elsewhere (`metricsPort`). */
  serveMetrics?: boolean;
  /** Prometheus registry to register on; default a registry of its own. */
  registry?: Registry;
  /** Also collect Node process metrics. */
  defaultMetrics?: boolean;
  /** Refuse upgrades on other paths with 404 (default true); false leaves them to other listeners. */
  refuseOtherPaths?: boolean;
  /**
   * Carry the peer library's data fallback: forward `relay` frames between peers of a room,
   * the channels of peers whose ICE failed (PROTOCOL.md, Relay). Default true; false
   * answers every relay frame with `relay-disabled` and announces
   * `relayMessagesPerSecond: 0` in the welcome. Not TURN: a TURN relay is `iceServers`.
   */
  dataFallback?: boolean;
  /** @deprecated The old name of `dataFallback` (it read as TURN's relay); used when `dataFallback` is not given. */
  relay?: boolean;
}

const positiveInt = z.number().int().positive();
/** A host name (RFC 1123 labels), optionally with a leading dot for "and its subdomains". */
const HOST_ENTRY = /^\.?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const LimitsSchema = z
  .object({
    maxMessageBytes: positiveInt,
    maxFrameBytes: positiveInt,
    maxMetaBytes: positiveInt,
    messagesPerSecond: z.number().positive(),
    messageBurst: positiveInt,
    maxPeersPerRoom: positiveInt,
    maxRooms: positiveInt,
    maxConnections: positiveInt,
    maxConnectionsPerIp: z.number().int().nonnegative(),
    ipv6PrefixLength: z.number().int().min(1).max(128),
    abuseThreshold: positiveInt,
    resumeGraceMs: z.number().int().nonnegative(),
    resumeQueueLength: z.number().int().nonnegative(),
    pingIntervalMs: positiveInt,
    relayMessagesPerSecond: z.number().positive(),
    relayMessageBurst: positiveInt,
    relayBytesPerSecond: z.number().positive(),
    relayBytesBurst: positiveInt,
    relayLatestAboveBytes: z.number().int().nonnegative(),
    relayLatestSlots: z.number().int().nonnegative(),
    relayMaxBufferedBytes: z.number().int().nonnegative(),
    maxBufferedBytes: positiveInt,
    slowReaderCloseMs: positiveInt,
    joinTimeoutMs: positiveInt,
    pollHoldMs: positiveInt,
    sseKeepaliveMs: positiveInt,
    maxPostBytes: positiveInt,
  })
  .partial()
  .strict();

const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', 'must be a function');
const origin = z.string().refine((s) => {
  try {
    return new URL(s).origin === s;
  } catch {
    return false;
  }
}, 'must be an origin like https://example.com (scheme, host, optional port; no path)');

const OptionsSchema = z
  .object({
    path: z.string().regex(/^\/[^?#\s]*$/, 'must start with / and have no query'),
    allowedOrigins: z.union([z.literal('*'), z.array(origin)]),
    secret: z.string().min(16, 'must be at least 16 characters'),
    verify: fn,
    limits: LimitsSchema,
    iceServers: z.union([z.array(IceServer as unknown as z.ZodType<IceServer>), fn]),
    store: z.custom<RoomStore>((v) => typeof v === 'object' && v !== null && 'join' in v, 'must be a RoomStore'),
    logger: z.union([z.literal(false), z.custom<Logger>((v) => typeof v === 'object' && v !== null && 'info' in v)]),
    clock: z.custom<Clock>((v) => typeof v === 'object' && v !== null && 'now' in v),
    allowedHosts: z.union([z.literal('*'), z.array(z.string().regex(HOST_ENTRY, 'must be a host name, or .domain for a domain and its subdomains'))]),
    tokenAudience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    tokenIssuer: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    trustProxy: z.union([z.boolean(), z.number().int().min(0).max(32), z.array(z.string().refine(isCidr, 'must be an IP address or CIDR'))]),
    metricsToken: z.string().min(16, 'must be at least 16 characters'),
    serveMetrics: z.boolean(),
    registry: z.custom<Registry>((v) => typeof v === 'object' && v !== null),
    defaultMetrics: z.boolean(),
    refuseOtherPaths: z.boolean(),
    dataFallback: z.boolean(),
    relay: z.boolean(),
  })
  .partial()
  .strict();

/** The `code` of an InvalidOptionsError: an option of the wrong type or shape, or options that contradict each other. */
export type InvalidOptionsErrorCode = 'invalid-options';

/** Thrown for options that make no sense, at construction time (like ws does). */
export class InvalidOptionsError extends Error {
  readonly code: InvalidOptionsErrorCode = 'invalid-options';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidOptionsError';
  }

  /** @deprecated The code before the kebab-case convention of every rallypoint error (`ERR_RALLYPOINT_OPTIONS`). */
  get legacyCode(): 'ERR_RALLYPOINT_OPTIONS' {
    return 'ERR_RALLYPOINT_OPTIONS';
  }
}

export function formatZodError(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'options'}: ${i.message}`).join('; ');
}

export interface ResolvedOptions extends Omit<SignalingServerOptions, 'limits' | 'path' | 'dataFallback' | 'relay' | 'allowedHosts'> {
  path: string;
  limits: Limits;
  dataFallback: boolean;
  /** @deprecated Same as `dataFallback`. */
  relay: boolean;
  /** The defaults and the configured names (lower case), or '*'. */
  allowedHosts: '*' | string[];
  /** `allowedHosts` was given (it is then checked with an explicit origin list too). */
  allowedHostsExplicit: boolean;
  proxyTrust: ProxyTrust;
}

/** Validates options; `serverNames` (the names the server listens as) join the allowed hosts. */
export function resolveOptions(options: SignalingServerOptions, serverNames: readonly string[] = []): ResolvedOptions {
  const parsed = OptionsSchema.safeParse(options);
  if (!parsed.success) throw new InvalidOptionsError(`invalid signaling options: ${formatZodError(parsed.error)}`, { cause: parsed.error });
  const limits: Limits = { ...DEFAULT_LIMITS, ...(options.limits ?? {}) };
  // Unless set, the cast-off deadline follows a shortened grace period (half of it), so that
  // lowering only resumeGraceMs never makes the defaults contradict each other (checked below).
  if (options.limits?.slowReaderCloseMs === undefined && limits.resumeGraceMs > 0) {
    limits.slowReaderCloseMs = Math.min(DEFAULT_LIMITS.slowReaderCloseMs, Math.max(1, Math.floor(limits.resumeGraceMs / 2)));
  }
  if (limits.maxMessageBytes > limits.maxFrameBytes) {
    throw new InvalidOptionsError('invalid signaling options: limits.maxMessageBytes must not exceed limits.maxFrameBytes');
  }
  if (limits.relayBytesBurst < limits.maxMessageBytes) {
    throw new InvalidOptionsError('invalid signaling options: limits.relayBytesBurst must be at least limits.maxMessageBytes (or a full-size relay frame could never pass)');
  }
  if (limits.relayLatestAboveBytes > limits.relayMaxBufferedBytes) {
    throw new InvalidOptionsError(
      'invalid signaling options: limits.relayLatestAboveBytes must not exceed limits.relayMaxBufferedBytes (unreliable frames would be buffered where reliable ones are dropped)',
    );
  }
  if (limits.maxBufferedBytes < limits.relayMaxBufferedBytes + limits.maxFrameBytes) {
    throw new InvalidOptionsError(
      'invalid signaling options: limits.maxBufferedBytes must be at least limits.relayMaxBufferedBytes + limits.maxFrameBytes (reliable relay frames are dropped below it, not the reader closed)',
    );
  }
  if (limits.maxBufferedBytes < 2 * limits.resumeQueueLength * limits.maxMessageBytes) {
    throw new InvalidOptionsError(
      'invalid signaling options: limits.maxBufferedBytes must be at least 2 x limits.resumeQueueLength x limits.maxMessageBytes (a resumed session gets its whole queue at once, with its welcome)',
    );
  }
  if (limits.resumeGraceMs > 0 && limits.slowReaderCloseMs >= limits.resumeGraceMs) {
    // The grace period starts at the 1013: a reader terminated only after it ended could never resume.
    throw new InvalidOptionsError(
      'invalid signaling options: limits.slowReaderCloseMs must be below limits.resumeGraceMs (a slow reader is terminated that long after its 1013 and must still be able to resume); resumeGraceMs 0 turns resume off',
    );
  }
  if ((options.tokenAudience !== undefined || options.tokenIssuer !== undefined) && options.secret === undefined) {
    throw new InvalidOptionsError('invalid signaling options: tokenAudience and tokenIssuer check tokens: they need a secret');
  }
  if (options.dataFallback !== undefined && options.relay !== undefined && options.dataFallback !== options.relay) {
    throw new InvalidOptionsError('invalid signaling options: relay is the old name of dataFallback: give one of them, or the same value to both');
  }
  const dataFallback = options.dataFallback ?? options.relay ?? true;
  const allowedHosts = options.allowedHosts === '*' ? '*' : [...defaultAllowedHosts(), ...serverNames, ...(options.allowedHosts ?? [])].map((h) => h.toLowerCase());
  return {
    ...options,
    path: options.path ?? DEFAULT_PATH,
    limits,
    dataFallback,
    relay: dataFallback,
    allowedHosts,
    allowedHostsExplicit: options.allowedHosts !== undefined,
    proxyTrust: resolveProxyTrust(options.trustProxy),
  };
}
