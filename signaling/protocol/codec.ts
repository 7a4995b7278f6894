/**
 * Decoding and encoding of rallypoint.v1 frames. Validation happens here, once, at the
 * edge (both server and client use it); everything past it works with typed messages.
 */
import type { ErrorCode } from './codes.js';
import { checkClientMessage } from './guards.js';
import { ClientMessage, type RelayMessage, ServerMessage, type SignalMessage } from './schemas.js';

export type DecodeFailure = { ok: false; code: Extract<ErrorCode, 'bad-json' | 'bad-message'>; message: string; ref?: string };
export type Decoded<T> = { ok: true; message: T } | DecodeFailure;

type Issue = { path: PropertyKey[]; code: string; message: string; note?: string };

/** A one-line, human-readable summary of the first schema issues. */
export function describeIssues(issues: readonly Issue[]): string {
  return issues
    .slice(0, 3)
    .map((i) => {
      const where = i.path.length ? i.path.map(String).join('.') : 'message';
      const what = i.note ?? (i.code === 'invalid_union' ? 'unknown type' : i.code.replace(/_/g, ' '));
      return `${where}: ${what}`;
    })
    .join('; ');
}

function parseJson(text: string): { ok: true; value: unknown } | DecodeFailure {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, code: 'bad-json', message: 'frame is not valid JSON' };
  }
}

/** The client's `ref`, if it sent a usable one, so an error can point back at the message. */
function refOf(value: unknown): string | undefined {
  if (typeof value === 'object' && value !== null && 'ref' in value) {
    const ref = (value as { ref: unknown }).ref;
    if (typeof ref === 'string' && ref.length <= 64) return ref;
  }
  return undefined;
}

function decodeWith<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: readonly Issue[] } } },
  text: string,
  fast?: (value: unknown) => T | undefined,
): Decoded<T> {
  const parsed = parseJson(text);
  if (!parsed.ok) return parsed;
  const quick = fast?.(parsed.value);
  if (quick !== undefined) return { ok: true, message: quick };
  const result = schema.safeParse(parsed.value);
  if (result.success) return { ok: true, message: result.data };
  const failure: DecodeFailure = { ok: false, code: 'bad-message', message: describeIssues(result.error.issues) };
  const ref = refOf(parsed.value);
  if (ref !== undefined) failure.ref = ref;
  return failure;
}

/**
 * The hot paths: a valid `signal` or `relay` frame is accepted by the plain guard
 * (guards.ts, proved equal to the schemas by test/unit/guards.test.ts) and built the way
 * the schema builds it (known keys only, `data` by reference), several times cheaper than
 * a zod parse for the message types that are nearly all of the traffic. Anything else, and
 * every invalid frame, goes to the schema, so rejections and their messages still come from zod.
 */
function fastPath(value: unknown): ClientMessage | undefined {
  const type = (value as { type?: unknown } | null)?.type;
  if ((type !== 'signal' && type !== 'relay') || checkClientMessage(value) !== null) return undefined;
  if (type === 'signal') {
    const { to, data, ref } = value as SignalMessage;
    return ref === undefined ? { type: 'signal', to, data } : { type: 'signal', to, data, ref };
  }
  const v = value as RelayMessage;
  const out: RelayMessage = { type: 'relay', to: v.to, channel: v.channel };
  if (v.data !== undefined) out.data = v.data;
  if (v.b64 !== undefined) out.b64 = v.b64;
  if (v.seq !== undefined) out.seq = v.seq;
  if (v.ack !== undefined) out.ack = v.ack;
  if (v.more !== undefined) out.more = v.more;
  if (v.unreliable !== undefined) out.unreliable = v.unreliable;
  if (v.ref !== undefined) out.ref = v.ref;
  return out;
}

/** Parses and validates a client-to-server frame. */
export function decodeClientMessage(text: string): Decoded<ClientMessage> {
  return decodeWith<ClientMessage>(ClientMessage, text, fastPath);
}

/** Parses and validates a server-to-client frame. */
export function decodeServerMessage(text: string): Decoded<ServerMessage> {
  return decodeWith<ServerMessage>(ServerMessage, text);
}

/** Validates and serializes a client-to-server message; throws on a message the server would refuse. */
export function encodeClientMessage(message: ClientMessage): string {
  const result = ClientMessage.safeParse(message);
  if (!result.success) throw new TypeError(`invalid ${String(message.type)} message: ${describeIssues(result.error.issues)}`);
  return JSON.stringify(result.data);
}

/** Serializes a server-to-client message (the server builds them, so no re-validation). */
export function encodeServerMessage(message: ServerMessage): string {
  return JSON.stringify(message);
}

export { utf8Length } from './utf8.js';
