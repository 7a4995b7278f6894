/**
 * How channel data is framed on each path.
 *
 * On the data channel, `reliable` and `latest` channels send [flags:u8][seq:u32 BE][payload]
 * (unreliable channels without `latest` send the bare message). In a fallback frame over the
 * signaling connection (signaling `relay` frames), `data` is either a plain string (a whole
 * text message that surely fits) or base64 of [kind:u8][bytes].
 */
import { encoder } from './bytes.js';
import type { Fragment } from './sequencing.js';

/**
 * Data channel flags: TEXT (payload is UTF-8), MORE (a fragment follows), ACK (no payload;
 * seq is the cumulative acknowledgement).
 */
export const FLAG_TEXT = 1;
export const FLAG_MORE = 2;
export const FLAG_ACK = 4;
const HEADER = 5;

export function encodeFragment(f: Fragment): Uint8Array {
  const out = new Uint8Array(HEADER + f.bytes.byteLength);
  out[0] = (f.text ? FLAG_TEXT : 0) | (f.more ? FLAG_MORE : 0);
  new DataView(out.buffer).setUint32(1, f.seq);
  out.set(f.bytes, HEADER);
  return out;
}

export function encodeAck(seq: number): Uint8Array {
  const out = new Uint8Array(HEADER);
  out[0] = FLAG_ACK;
  new DataView(out.buffer).setUint32(1, seq >>> 0);
  return out;
}

export type DecodedFrame = { ack: number } | { fragment: Fragment };

export function decodeFrame(frame: Uint8Array): DecodedFrame | null {
  if (frame.byteLength < HEADER) return null;
  const flags = frame[0] as number;
  if (flags > (FLAG_TEXT | FLAG_MORE | FLAG_ACK)) return null;
  const seq = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(1);
  if (flags & FLAG_ACK) return flags === FLAG_ACK && frame.byteLength === HEADER ? { ack: seq } : null;
  return { fragment: { seq, text: (flags & FLAG_TEXT) !== 0, more: (flags & FLAG_MORE) !== 0, bytes: frame.subarray(HEADER) } };
}

/** Kind byte in front of base64 fallback payloads. */
const KIND_BYTES = 0;
const KIND_TEXT = 1;

/** Base64 payload of a fallback frame: a kind byte, then the bytes. */
export function withKind(text: boolean, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength + 1);
  out[0] = text ? KIND_TEXT : KIND_BYTES;
  out.set(bytes, 1);
  return out;
}

/** What a fallback frame's data carries: text (plain `data`) or [kind][bytes] (base64). */
export function fallbackPayload(data: string | Uint8Array | undefined): { text: boolean; bytes: Uint8Array } | null {
  if (data === undefined) return null;
  if (typeof data === 'string') return { text: true, bytes: encoder.encode(data) };
  if (data.byteLength < 1 || (data[0] !== KIND_TEXT && data[0] !== KIND_BYTES)) return null;
  return { text: data[0] === KIND_TEXT, bytes: data.subarray(1) };
}

/**
 * A text payload goes in a fallback frame as a plain JSON string when its escaped form
 * surely fits the frame (JSON escapes a character to at most 6), else as base64 of its UTF-8.
 */
export function plainTextFits(text: string, budget: number): boolean {
  return text.length * 6 <= budget;
}
