/**
 * The key a client IP counts under for the TURN server's per-IP limits (the request bucket and
 * the allocation quota). One IPv6 host usually holds a whole /64 (RFC 4291 section 2.5.4, SLAAC
 * privacy addresses, RFC 8981) and can pick a new source address per request, so counting whole
 * IPv6 addresses would give it 2^64 budgets; the signaling server counts per /64 likewise.
 * IPv4-mapped IPv6 (`::ffff:a.b.c.d`, RFC 4291 section 2.5.5.2, what a dual-stack socket
 * reports for an IPv4 client) counts as the IPv4 address.
 */
import { ipBytes } from './ip.js';

/** `ip` as the socket reports it: an IPv4 address as is, an IPv6 address as its first `ipv6PrefixLength` bits. */
export function sourceKey(ip: string, ipv6PrefixLength: number): string {
  if (!ip.includes(':')) return ip;
  let b: Buffer;
  try {
    b = ipBytes(ip);
  } catch {
    return ip; // not an address (never from a socket): counts as itself
  }
  if (b.readUInt32BE(0) === 0 && b.readUInt32BE(4) === 0 && b.readUInt32BE(8) === 0xffff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const whole = ipv6PrefixLength >> 3;
  const bits = ipv6PrefixLength & 7;
  let key = b.toString('hex', 0, whole);
  if (bits > 0) key += (b[whole]! & (0xff << (8 - bits)) & 0xff).toString(16).padStart(2, '0');
  return `${key}/${ipv6PrefixLength}`;
}
