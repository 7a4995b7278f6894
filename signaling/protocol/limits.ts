/**
 * Default limits of the signaling service. Every limit is documented in PROTOCOL.md;
 * the server announces the ones in force in `welcome.limits`.
 */
export const DEFAULT_LIMITS = {
  /** Largest accepted message in bytes (UTF-8 of the JSON text); bigger gets `too-large`. */
  maxMessageBytes: 16 * 1024,
  /** Hard frame limit (ws `maxPayload`); a bigger frame closes the connection with 1009. */
  maxFrameBytes: 64 * 1024,
  /** Largest `meta` object in bytes of its JSON. */
  maxMetaBytes: 1024,
  /** Sustained messages per second per connection (token bucket refill rate). */
  messagesPerSecond: 50,
  /** Token bucket size: a burst this large is accepted at once. */
  messageBurst: 200,
  /** Peers per room. */
  maxPeersPerRoom: 32,
  /** Rooms on this server. */
  maxRooms: 10_000,
  /** Open WebSocket connections on this server. */
  maxConnections: 10_000,
  /** Open connections per client IP (0 = no limit). */
  maxConnectionsPerIp: 64,
  /**
   * IPv6 clients count against `maxConnectionsPerIp` by this many leading bits of their
   * address: a /64 is one subscriber (RFC 6177), who has 2^64 addresses to rotate through.
   */
  ipv6PrefixLength: 64,
  /** Errors a connection may cause before it is closed; they decay at 1 per second. */
  abuseThreshold: 20,
  /** How long a disconnected peer's id is kept for resume, in ms. */
  resumeGraceMs: 10_000,
  /** Signals kept for a disconnected peer during the grace period. */
  resumeQueueLength: 64,
  /** Interval between server pings, in ms; a peer that missed the last pong is terminated. */
  pingIntervalMs: 30_000,
  /**
   * Sustained `relay` frames per second per connection, on a bucket of their own: relay
   * frames never take from the signaling bucket, so a game's data cannot starve its
   * negotiation (ICE restarts) of tokens.
   */
  relayMessagesPerSecond: 400,
  /** Relay message bucket size. */
  relayMessageBurst: 800,
  /** Sustained relayed bytes per second per connection (sizes of the frames as received). */
  relayBytesPerSecond: 1024 * 1024,
  /** Relay byte bucket size; at least `maxMessageBytes`, or a full-size frame could never pass. */
  relayBytesBurst: 1024 * 1024,
  /**
   * A recipient with more than this many bytes waiting to be written gets its `unreliable`
   * relay frames held, the newest per (sender, channel) only, until its socket drains.
   */
  relayLatestAboveBytes: 64 * 1024,
  /** Held unreliable frames per recipient connection (one per sender and channel); more are dropped. */
  relayLatestSlots: 64,
  /**
   * Reliable relay frames to a recipient with more than this many bytes waiting are dropped
   * (the peer library retransmits unacknowledged data end to end): a reader that stalls
   * costs the server at most this much.
   */
  relayMaxBufferedBytes: 1024 * 1024,
  /**
   * Bytes the server holds for one connection that are not yet written to its socket (every
   * frame type: signals, peer-joined/left, errors, relay frames). A frame that would take the
   * backlog past this closes the connection with 1013 and keeps its session for resume: a
   * reader that stalls costs the server at most this much. Above `relayMaxBufferedBytes`.
   */
  maxBufferedBytes: 4 * 1024 * 1024,
  /**
   * How long a connection closed with 1013 (a slow reader) may take to read its backlog and
   * the close frame before it is terminated and the backlog freed (instead of ws's 30 s
   * closing-handshake timeout): a source with `maxConnectionsPerIp` slow readers holds at
   * most that many x `maxBufferedBytes` for this long. Below `resumeGraceMs`, so a reader
   * that did not make it can still resume (it loses what was buffered).
   */
  slowReaderCloseMs: 5_000,
  /**
   * How long a connection may stay out of a room (from the upgrade, and again after `leave`)
   * before it is closed with 4008: an idle socket costs memory and a per-IP slot.
   */
  joinTimeoutMs: 10_000,
  /**
   * HTTP transports (PROTOCOL.md): a long-poll is held this long at most when there is
   * nothing to send, below the 30-60 s idle timeouts of common proxies and load balancers.
   */
  pollHoldMs: 20_000,
  /** An SSE stream gets a comment after this long without an event (idle proxy timeouts). */
  sseKeepaliveMs: 15_000,
  /** Largest POST body of the HTTP transports (one batch of frames); bigger gets 413. */
  maxPostBytes: 256 * 1024,
} as const;

export type Limits = { -readonly [K in keyof typeof DEFAULT_LIMITS]: number };

/** The limits the server announces to clients in `welcome.limits`. */
export type AnnouncedLimits = Pick<
  Limits,
  | 'maxMessageBytes'
  | 'maxFrameBytes'
  | 'maxMetaBytes'
  | 'messagesPerSecond'
  | 'messageBurst'
  | 'maxPeersPerRoom'
  | 'resumeGraceMs'
  | 'relayMessagesPerSecond'
  | 'relayMessageBurst'
  | 'relayBytesPerSecond'
  | 'relayBytesBurst'
  | 'maxBufferedBytes'
>;

/**
 * Deepest nesting of `signal.data` and `meta` the server relays (objects and arrays count
 * one level each). Real signaling payloads nest 2-4 levels; without a bound, a few KB of
 * `[[[[...` overflow the stack when the server re-serializes the data.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * True when `value` nests deeper than `max` levels. Recursion is bounded by `max`, and the
 * walk allocates nothing, which matters on the relay path (every signal's data goes through it).
 */
export function jsonDepthExceeds(value: unknown, max: number = MAX_JSON_DEPTH): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (max <= 0) return true;
  if (Array.isArray(value)) {
    for (const child of value) if (jsonDepthExceeds(child, max - 1)) return true;
    return false;
  }
  const obj = value as Record<string, unknown>;
  for (const key in obj) if (jsonDepthExceeds(obj[key], max - 1)) return true;
  return false;
}
