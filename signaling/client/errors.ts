import type { ErrorCode } from '../protocol/codes.js';

/** Codes of errors raised by the client itself (not sent by the server). */
export type ClientErrorCode = 'invalid-message' | 'not-open' | 'closed' | 'gave-up' | 'timeout';

/** An error with a stable code: a server `error` frame, or a client-side failure. */
export class SignalingError extends Error {
  constructor(
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    readonly ref?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SignalingError';
  }
}
