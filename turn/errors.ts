/** Errors thrown by `rallypoint/turn`, each with a stable `code`. */
export type TurnErrorCode =
  | 'TURN_INSECURE_CONFIG'
  | 'TURN_BAD_CONFIG'
  | 'TURN_LISTEN_FAILED'
  | 'TURN_CLOSED'
  | 'TURN_BAD_CIDR'
  | 'TURN_BAD_CREDENTIALS'
  | 'TURN_BAD_QUOTA';

export class TurnError extends Error {
  readonly code: TurnErrorCode;
  constructor(code: TurnErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TurnError';
    this.code = code;
  }
}
