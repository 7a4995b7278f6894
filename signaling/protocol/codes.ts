/**
 * Stable error codes and WebSocket close codes of the rallypoint.v1 protocol.
 * Browser-safe: no Node imports. Documented in signaling/PROTOCOL.md.
 */

/** Every `error.code` the server can send. Never renamed; new ones may be added. */
export const ERROR_CODES = [
  'bad-json',
  'bad-message',
  'too-large',
  'rate-limited',
  'not-joined',
  'already-joined',
  'peer-not-found',
  'room-full',
  'too-many-rooms',
  'unauthorized',
  'server-full',
  'internal',
  'relay-disabled',
  'unavailable',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * WebSocket close codes. 1000-1015 are RFC 6455 §7.4.1; 4000-4999 are reserved for
 * applications (RFC 6455 §7.4.2) and are the project's own.
 */
export const CLOSE_CODES = {
  /** Client sent `leave` and the server ended the connection, or the client closed. */
  normal: 1000,
  /** Server shutting down (RFC 6455 §7.4.1 "going away"). */
  goingAway: 1001,
  /** Frame larger than the hard frame limit (`maxPayload`), closed by ws itself. */
  frameTooLarge: 1009,
  /** Unexpected server error. */
  internal: 1011,
  /**
   * "Try Again Later" (IANA WebSocket close code registry): the client did not read its
   * socket and its unsent backlog passed `maxBufferedBytes`. The server casts it off rather
   * than buffer without bound; the session is kept for resume, so the client reconnects.
   * Also ends a connection whose join or resume cannot be served now (error `unavailable`:
   * a cluster node without Redis); the client retries with backoff.
   */
  tooSlow: 1013,
  /**
   * "Service Restart" (IANA registry): the node is draining for a restart or deploy; the
   * client reconnects at once (to another node behind the load balancer) and resumes.
   */
  serviceRestart: 1012,
  /** Repeated frames that are not JSON. */
  badJson: 4000,
  /** Repeated frames that do not match the schema. */
  badMessage: 4001,
  /** Repeated protocol misuse of another kind (not-joined, peer-not-found, ...). */
  protocolAbuse: 4002,
  /** The token does not allow what the client asked for (e.g. another room). */
  unauthorized: 4003,
  /** The connection was not in a room for `joinTimeoutMs` (never joined, or idle after leave). */
  joinTimeout: 4008,
  /** Repeated messages over the message size limit. */
  tooLarge: 4009,
  /** Another connection resumed this session. */
  replaced: 4010,
  /**
   * Sent by a client leaving a transport for another (an HTTP session for a WebSocket that
   * works again): the session stays in its resume grace, and what it had not acknowledged
   * is queued for the resume.
   */
  moving: 4011,
  /** Repeated messages beyond the rate limit. */
  rateLimited: 4029,
  /**
   * Sent by a client: the server did not answer in time (no `welcome`, or no frame after a
   * `ping`), so the client gives the connection up and reconnects. Not 1000: the session
   * must stay resumable.
   */
  timeout: 4408,
} as const;
export type CloseCode = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES];

/** The close code a connection gets when an error code repeats past the abuse threshold. */
export function closeCodeFor(code: ErrorCode): CloseCode {
  switch (code) {
    case 'bad-json':
      return CLOSE_CODES.badJson;
    case 'bad-message':
      return CLOSE_CODES.badMessage;
    case 'too-large':
      return CLOSE_CODES.tooLarge;
    case 'rate-limited':
      return CLOSE_CODES.rateLimited;
    case 'unauthorized':
      return CLOSE_CODES.unauthorized;
    case 'internal':
      return CLOSE_CODES.internal;
    case 'not-joined':
    case 'already-joined':
    case 'peer-not-found':
    case 'room-full':
    case 'too-many-rooms':
    case 'unavailable':
    case 'server-full':
    // The welcome announced relayMessagesPerSecond 0: relaying anyway, again and again, is
    // misuse like the others; one frame only costs a strike.
    case 'relay-disabled':
      return CLOSE_CODES.protocolAbuse;
  }
}

/** Close codes after which a client must not reconnect on its own. */
// Numbers, not CLOSE_CODES.x: this set is in the browser bundle, where each property
// access costs bytes against its budget (test/unit/codes.test.ts pins it to CLOSE_CODES).
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set<number>([
  4000, // badJson
  4001, // badMessage
  4002, // protocolAbuse
  4003, // unauthorized
  4010, // replaced
]);

/** Reasons an upgrade is refused with, and the HTTP status each gets. */
export const UPGRADE_REFUSALS = {
  'bad-path': 404,
  'bad-origin': 403,
  'bad-host': 403,
  'bad-subprotocol': 400,
  unauthorized: 401,
  'server-full': 503,
  'ip-full': 429,
  'shutting-down': 503,
  'bad-request': 400,
  /** HTTP transports: a request for a session id that does not exist (any more) here. */
  'unknown-session': 404,
  /** HTTP transports: a POST body over maxPostBytes. */
  'too-large': 413,
  /** HTTP transports: more POSTs of one session at once than the server reads (2). */
  busy: 429,
} as const;
export type UpgradeRefusal = keyof typeof UPGRADE_REFUSALS;

/** Why a peer left a room, as told in `peer-left.reason`. */
export const LEAVE_REASONS = ['left', 'closed', 'timeout'] as const;
export type LeaveReason = (typeof LEAVE_REASONS)[number];
