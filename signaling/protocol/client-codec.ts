/**
 * The client side of the codec, without zod: the browser bundle validates with the
 * guards (equal to the schemas, see guards.ts) to stay small. Same results as codec.ts.
 */
import { checkClientMessage, checkServerMessage } from './guards.js';
import type { ClientMessage, ServerMessage } from './schemas.js';

export type ClientDecoded = { ok: true; message: ServerMessage } | { ok: false; code: 'bad-json' | 'bad-message'; message: string };

/** Parses and validates a server-to-client frame. */
export function decodeServerFrame(text: string): ClientDecoded {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    return { ok: false, code: 'bad-json', message: 'frame is not valid JSON' };
  }
  const problem = checkServerMessage(value);
  return problem === null ? { ok: true, message: value as ServerMessage } : { ok: false, code: 'bad-message', message: problem };
}

/** Validates and serializes a client-to-server message; throws TypeError on one the server would refuse. */
export function encodeClientFrame(message: ClientMessage): string {
  const problem = checkClientMessage(message);
  if (problem !== null) throw new TypeError(`invalid ${String((message as { type?: unknown }).type)} message: ${problem}`);
  return JSON.stringify(message);
}
