/**
 * Peer address policy (RFC 8656 section 21.3, "Relaying to internal addresses"): which peer
 * addresses the TURN server relays to. By default it refuses eturnal's "recommended" deny list
 * plus the deprecated IPv6 forms that embed an IPv4 address (IPv4-compatible ::/96, RFC 4291
 * section 2.5.5.1; IPv4-translated ::ffff:0:0:0/96, RFC 2765) and site-local fec0::/10 (RFC
 * 3879). Every IPv6 form that embeds an IPv4 address is also judged by that IPv4 address
 * (see embeddedIPv4), so a deny list that names only IPv4 ranges still holds for
 * ::ffff:10.0.0.1, ::10.0.0.1, 64:ff9b::a00:1, 2002:a00:1::, Teredo and the rest.
 */
import { isIP } from 'node:net';
import { TurnError } from './errors.js';
import { ipBytes } from './ip.js';

export const DEFAULT_DENIED_PEERS: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '255.255.255.255/32',
  '::/128',
  '::1/128',
  '::/96',
  '::ffff:0:0:0/96',
  '64:ff9b::/96',
  '64:ff9b:1::/48',
  '100::/64',
  '2001::/32',
  '2001:db8::/32',
  '2002::/16',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
];

interface Cidr {
  bytes: Buffer;
  prefix: number;
}

export function parseCidr(text: string): Cidr {
  const [addr, len, extra] = text.split('/');
  if (addr === undefined || extra !== undefined || isIP(addr) === 0) {
    throw new TurnError('bad-cidr', `invalid CIDR ${JSON.stringify(text)}`);
  }
  const bytes = ipBytes(addr);
  const max = bytes.length * 8;
  const prefix = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (len !== undefined && !/^\d+$/.test(len))) {
    throw new TurnError('bad-cidr', `invalid CIDR ${JSON.stringify(text)}`);
  }
  return { bytes, prefix };
}

function matches(c: Cidr, ip: Buffer): boolean {
  if (c.bytes.length !== ip.length) return false;
  const full = c.prefix >> 3;
  if (!c.bytes.subarray(0, full).equals(ip.subarray(0, full))) return false;
  const rest = c.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (c.bytes[full]! & mask) === (ip[full]! & mask);
}

const ZERO = Buffer.alloc(12);
const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
const TRANSLATED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
const NAT64_PREFIX = Buffer.from([0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0]);

/**
 * The IPv4 addresses an IPv6 address carries, whichever way it reaches them: the last 32 bits
 * of IPv4-compatible (::/96), IPv4-mapped (::ffff:0:0/96), IPv4-translated (::ffff:0:0:0/96)
 * and NAT64 well-known prefix (64:ff9b::/96, RFC 6052) addresses; bits 16-47 of 6to4
 * (2002::/16, RFC 3056); the server and the (inverted) client address of Teredo (2001::/32,
 * RFC 4380). The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) places the IPv4 address
 * according to a prefix length only its operator knows: it is in the default deny list.
 */
export function embeddedIPv4(ip: Buffer): Buffer[] {
  if (ip.length !== 16) return [];
  const head = ip.subarray(0, 12);
  // ::/128 and ::1/128 are not IPv4-compatible addresses (RFC 4291 section 2.5.5.1): they are
  // judged as themselves.
  if (head.equals(ZERO)) return ip.readUInt32BE(12) > 1 ? [ip.subarray(12)] : [];
  if (head.equals(MAPPED_PREFIX) || head.equals(TRANSLATED_PREFIX) || head.equals(NAT64_PREFIX)) return [ip.subarray(12)];
  if (ip[0] === 0x20 && ip[1] === 0x02) return [ip.subarray(2, 6)];
  if (ip[0] === 0x20 && ip[1] === 0x01 && ip[2] === 0 && ip[3] === 0) return [ip.subarray(4, 8), Buffer.from(ip.subarray(12).map((b) => b ^ 0xff))];
  return [];
}

export interface PeerPolicyOptions {
  /** CIDRs relayed to even when denied (LANs, tests). */
  allow?: readonly string[];
  /** Replaces the default deny list. */
  deny?: readonly string[];
}

export class PeerPolicy {
  private readonly allowList: Cidr[];
  private readonly denyList: Cidr[];

  constructor(options: PeerPolicyOptions = {}) {
    this.allowList = (options.allow ?? []).map(parseCidr);
    this.denyList = (options.deny ?? DEFAULT_DENIED_PEERS).map(parseCidr);
  }

  /** True if the server may relay to `address`. Unparseable addresses are refused. */
  allows(address: string): boolean {
    let ip: Buffer;
    try {
      ip = ipBytes(address);
    } catch {
      return false;
    }
    // An address that embeds an IPv4 address reaches it: judge that too.
    const forms = [ip, ...embeddedIPv4(ip)];
    if (forms.some((f) => this.allowList.some((c) => matches(c, f)))) {
      // Allowed only if every form is allowed or not denied.
      return forms.every((f) => this.allowList.some((c) => matches(c, f)) || !this.denyList.some((c) => matches(c, f)));
    }
    return !forms.some((f) => this.denyList.some((c) => matches(c, f)));
  }
}
