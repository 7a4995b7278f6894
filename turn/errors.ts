/**
 * Stable codes of the errors `rallypoint/turn` throws:
 * - insecure-config: no credential lookup (the server is never an open relay), or a TURN
 *   REST secret shorter than 16 bytes;
 * - bad-config: an invalid port range or lifetimes, or a wildcard listener without
 *   relayAddress or externalAddress;
 * - listen-failed: the UDP port could not be bound (`cause` has the socket error);
 * - closed: the server is closed or not listening;
 * - bad-cidr: a peer policy CIDR that does not parse;
 * - bad-credentials: a peer id that cannot be put in a REST username;
 * - bad-quota: an unknown quota, or a value that is not a positive number (integer for counts).
 */
export type TurnErrorCode = 'insecure-config' | 'bad-config' | 'listen-failed' | 'closed' | 'bad-cidr' | 'bad-credentials' | 'bad-quota';

/** @deprecated The codes before they followed the kebab-case convention of PeerError and SignalingError; use `TurnErrorCode`. */
export type LegacyTurnErrorCode = 'insecure-config' | 'bad-config' | 'listen-failed' | 'closed' | 'bad-cidr' | 'bad-credentials' | 'bad-quota';

/** An error of the TURN server, its options or its credentials, with a stable `code` and the `cause` when there is one. */
export class TurnError extends Error {
  constructor(
    readonly code: TurnErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TurnError';
  }

  /** @deprecated The old spelling of `code` (`TURN_BAD_CONFIG` for `bad-config`), for code that compared against it. */
  get legacyCode(): LegacyTurnErrorCode {
    return `TURN_${this.code.toUpperCase().replace(/-/g, '_')}` as LegacyTurnErrorCode;
  }
}
