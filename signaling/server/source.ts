/**
 * Where a connection comes from: the client address (through trusted proxies) and the key it
 * counts under for `maxConnectionsPerIp`.
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * Which proxies in front of the server are trusted to append to X-Forwarded-For:
 * a hop count (the last N entries were written by proxies you run), or a list of the proxies'
 * addresses/CIDRs. `true` is one hop; `false`/`0` ignores the header.
 */
export type TrustProxy = boolean | number | string[];

/** `trustProxy` ready to use: hops, a matcher of trusted addresses, or null (no proxy). */
export type ProxyTrust = number | { readonly check: (address: string) => boolean } | null;

/** True for `a.b.c.d`, `a.b.c.d/len`, `v6` or `v6/len` with a prefix length in range. */
export function isCidr(s: string): boolean {
  const [addr, len, extra] = s.split('/');
  if (addr === undefined || extra !== undefined) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (len === undefined) return true;
  return /^\d{1,3}$/.test(len) && Number(len) <= (family === 4 ? 32 : 128);
}

export function resolveProxyTrust(option: TrustProxy | undefined): ProxyTrust {
  if (option === undefined || option === false || option === 0) return null;
  if (option === true) return 1;
  if (typeof option === 'number') return option;
  const list = new BlockList();
  for (const entry of option) {
    const [addr = '', len] = entry.split('/');
    const type = isIP(addr) === 4 ? 'ipv4' : 'ipv6';
    if (len === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(len), type);
  }
  return { check: (address) => list.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6') };
}

/**
 * An address as a proxy may write it (`1.2.3.4`, `1.2.3.4:5678`, `[v6]:port`, `v6`), as a
 * plain IP; IPv4-mapped IPv6 (`::ffff:1.2.3.4`, RFC 4291 §2.5.5.2) as the IPv4 address.
 * Null when it is not an address.
 */
export function normalizeAddress(raw: string): string | null {
  let s = raw.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(s);
  if (bracketed) s = bracketed[1]!;
  else if (/^\d{1,3}(?:\.\d{1,3}){3}:\d{1,5}$/.test(s)) s = s.slice(0, s.lastIndexOf(':'));
  const family = isIP(s);
  if (family === 0) return null;
  if (family === 6) {
    const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(s);
    if (mapped) return mapped[1]!;
  }
  return s;
}

/**
 * The client's address. Without trusted proxies, the socket's peer. With them, the
 * X-Forwarded-For entries are read from the right (each proxy appends the address it saw):
 * the first one not written by a trusted proxy is the client. The leftmost entries are
 * whatever the client sent, so they are never taken on trust.
 */
export function clientAddress(request: IncomingMessage, trust: ProxyTrust): string {
  const remote = normalizeAddress(request.socket.remoteAddress ?? '') ?? 'unknown';
  if (trust === null) return remote;
  // A list of proxies: a request that did not come from one of them has no trusted header.
  if (typeof trust === 'object' && !trust.check(remote)) return remote;
  const header = request.headers['x-forwarded-for'];
  const entries = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',');
  let client = remote;
  for (let i = entries.length - 1, hop = 1; i >= 0; i--, hop++) {
    const entry = entries[i]!.trim();
    if (entry === '') continue;
    const address = normalizeAddress(entry);
    // Not an address: the last one a trusted hop vouched for stands.
    if (address === null) return client;
    client = address;
    if (typeof trust === 'number' ? hop >= trust : !trust.check(address)) return client;
  }
  return client;
}

/** The 8 16-bit groups of an IPv6 address (valid per `isIP`), embedded IPv4 included. */
function ipv6Groups(address: string): number[] {
  let s = address;
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * The key a client address counts under for per-IP limits: an IPv4 address as it is, an IPv6
 * address by its first `ipv6Prefix` bits (default /64, one subscriber's prefix per RFC 6177,
 * which hands every host 2^64 addresses to rotate through), IPv4-mapped IPv6 as IPv4.
 */
export function sourceKey(address: string, ipv6Prefix: number): string {
  const normalized = normalizeAddress(address);
  if (normalized === null || isIP(normalized) === 4) return normalized ?? address;
  const groups = ipv6Groups(normalized);
  const out: string[] = [];
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, ipv6Prefix - i * 16));
    const mask = keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff;
    out.push(((groups[i] ?? 0) & mask).toString(16));
  }
  return `${out.join(':')}/${ipv6Prefix}`;
}
