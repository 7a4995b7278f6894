/**
 * Standard base64 with padding (RFC 4648 §4), for binary `relay` data, on the platform's
 * btoa/atob (browsers and Node >= 16, no Buffer): the smallest code for the browser
 * bundle's budget. Node 20's atob/btoa manage about 80-100 MB/s, far above the relay's
 * per-connection byte limit (1 MiB/s by default).
 */

/** Padded standard base64 and nothing else: atob also takes unpadded text and whitespace. */
const STRICT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Base64 of `bytes`, padded. */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = '';
  // In chunks: one apply() with a whole large array would overflow the argument stack.
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[]);
  return btoa(binary);
}

/**
 * The bytes of padded base64 `text`, or null when it is not that: a length that is not a
 * multiple of 4, a character outside the alphabet, or `=` anywhere but the last one or two
 * places. Like Buffer and atob it ignores the unused low bits of the last character.
 */
export function decodeBase64(text: string): Uint8Array | null {
  if (!STRICT.test(text)) return null;
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
