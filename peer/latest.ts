/**
 * Framing of `latest`-mode messages: [kind:u8][seq:u32 BE][payload]. kind 0 = bytes,
 * 1 = UTF-8 text. The receiver keeps the newest sequence number and drops anything not
 * newer, using serial-number arithmetic (RFC 1982) so the counter may wrap.
 */
const HEADER = 5;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeLatest(seq: number, payload: string | Uint8Array): Uint8Array {
  const body = typeof payload === 'string' ? encoder.encode(payload) : payload;
  const out = new Uint8Array(HEADER + body.byteLength);
  out[0] = typeof payload === 'string' ? 1 : 0;
  new DataView(out.buffer).setUint32(1, seq >>> 0);
  out.set(body, HEADER);
  return out;
}

export function decodeLatest(frame: Uint8Array): { seq: number; payload: string | Uint8Array } | null {
  if (frame.byteLength < HEADER || frame[0]! > 1) return null;
  const seq = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(1);
  const body = frame.subarray(HEADER);
  return { seq, payload: frame[0] === 1 ? decoder.decode(body) : body };
}

/** True when `a` is newer than `b` in 32-bit serial-number arithmetic (RFC 1982 §3.2). */
export function seqNewer(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x80000000;
}

/** Per-channel receive filter for latest mode. */
export class LatestFilter {
  private newest: number | null = null;
  /** Stale messages dropped (older than the newest). */
  dropped = 0;
  /** Sequence numbers skipped: messages lost, or overtaken and then dropped as stale. */
  lost = 0;

  accept(seq: number): boolean {
    if (this.newest !== null && !seqNewer(seq, this.newest)) {
      this.dropped++;
      return false;
    }
    if (this.newest !== null) this.lost += ((seq - this.newest) >>> 0) - 1;
    this.newest = seq;
    return true;
  }
}
