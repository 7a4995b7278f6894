/**
 * Framing of `latest`-mode messages: [kind:u8][seq:u32 BE][payload], kind 0 = bytes,
 * 1 = UTF-8 text: the data channel framing of reliable fragments (peer/framing.ts) with
 * only the TEXT flag, so both share one codec. The receiver keeps the newest sequence
 * number and drops anything not newer, using serial-number arithmetic (RFC 1982) so the
 * counter may wrap.
 */
import { decoder, encoder } from './bytes.js';
import { decodeFrame, encodeFragment } from './framing.js';
import { seqNewer } from './sequencing.js';

export { seqNewer };

export function encodeLatest(seq: number, payload: string | Uint8Array): Uint8Array {
  const text = typeof payload === 'string';
  return encodeFragment({ seq: seq >>> 0, text, more: false, bytes: text ? encoder.encode(payload) : payload });
}

export function decodeLatest(frame: Uint8Array): { seq: number; payload: string | Uint8Array } | null {
  const d = decodeFrame(frame);
  if (!d || !('fragment' in d) || d.fragment.more) return null;
  const f = d.fragment;
  return { seq: f.seq, payload: f.text ? decoder.decode(f.bytes) : f.bytes };
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
