/**
 * The browser-safe base64 of relay frames (signaling/protocol/base64.ts) against Node's
 * Buffer, the reference: same text for every byte string, same bytes back, and a strict
 * decoder that refuses what RFC 4648 §4 padded base64 is not (Buffer accepts it all).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64, encodeBase64 } from '../../signaling/protocol/base64.js';

/** Padded standard base64, strictly (the last character's unused bits may be anything). */
const STRICT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

describe('base64', () => {
  it('encodes exactly like Buffer, subarrays included (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(3), fc.nat(3), (bytes, from, cut) => {
        const view = bytes.subarray(Math.min(from, bytes.length), Math.max(Math.min(from, bytes.length), bytes.length - cut));
        expect(encodeBase64(view)).toBe(Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('base64'));
      }),
      { numRuns: 5_000 },
    );
  });

  it('decodes what Buffer encodes back to the same bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const decoded = decodeBase64(Buffer.from(bytes).toString('base64'));
        expect(decoded).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(decoded!).equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 5_000 },
    );
  });

  it('accepts exactly the strict padded form, and then agrees with Buffer (property)', () => {
    const text = fc.oneof(
      fc.string({ unit: fc.constantFrom(...ALPHABET, '=', '-', '_', ' ', '\n', 'é', '\u{1F600}'), maxLength: 24 }),
      fc.base64String({ maxLength: 40 }),
      // Valid text with one character replaced, removed or added.
      fc
        .tuple(fc.base64String({ minLength: 4, maxLength: 40 }), fc.nat(), fc.constantFrom('=', '*', '', 'AA', '\u0100', 'A'))
        .map(([t, at, c]) => t.slice(0, at % t.length) + c + t.slice((at % t.length) + 1)),
    );
    fc.assert(
      fc.property(text, (t) => {
        const decoded = decodeBase64(t);
        expect(decoded !== null, JSON.stringify(t)).toBe(STRICT.test(t));
        if (decoded !== null) expect(Buffer.from(decoded).equals(Buffer.from(t, 'base64')), t).toBe(true);
      }),
      { numRuns: 10_000 },
    );
  });

  it('edge cases', () => {
    expect(encodeBase64(new Uint8Array())).toBe('');
    expect(decodeBase64('')).toEqual(new Uint8Array());
    expect(decodeBase64('AA==')).toEqual(new Uint8Array([0]));
    expect(decodeBase64('//8=')).toEqual(new Uint8Array([255, 255]));
    for (const bad of ['A', 'AA', 'AA=', 'A===', '====', '=AAA', 'AA=A', 'AAAA====', 'AA==AA==', 'AA AA', 'AA-_', 'AA\u0141=']) expect(decodeBase64(bad), bad).toBeNull();
  });
});
