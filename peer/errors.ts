/** Stable codes of the peer library's errors. */
export type PeerErrorCode =
  | 'unknown-channel'
  | 'too-large'
  | 'closed'
  | 'buffer-full'
  | 'bad-data'
  /** The remote peer broke the channel framing (peer/sequencing.ts); the peer is closed. */
  | 'protocol-violation'
  | 'negotiation-failed'
  | 'no-runtime'
  | 'signaling';

/** An error of the peer library, with a stable `code` and the `cause` when there is one. */
export class PeerError extends Error {
  constructor(
    readonly code: PeerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PeerError';
  }
}
