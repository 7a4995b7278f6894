/**
 * Peer address policy (RFC 8656 section 21.3, "Relaying to internal addresses"): which peer
 * addresses the TURN server relays to. By default it refuses eturnal's "recommended" deny list,
 * matching IPv4-mapped (::ffff:0:0/96) and NAT64 (64:ff9b::/96) forms against the IPv4 rules.
 */
import { isIP } from 'node:net';
import { TurnError } from './errors.js';
import { ipBytes } from './stun.js';

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
  '64:ff9b::/96',
  '64:ff9b:1::/48',
  '100::/64',
  '2001::/32',
  '2001:db8::/32',
  '2002::/16',
  'fc00::/7',
  'fe80::/10',
  'ff00::/8',
];

interface Cidr {
  bytes: Buffer;
  prefix: number;
}

export function parseCidr(text: string): Cidr {
  const [addr, len, extra] = text.split('/');
  if (addr === undefined || extra !== undefined || isIP(addr) === 0) {
    throw new TurnError('TURN_BAD_CIDR', `invalid CIDR ${JSON.stringify(text)}`);
  }
  const bytes = ipBytes(addr);
  const max = bytes.length * 8;
  const prefix = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (len !== undefined && !/^\d+$/.test(len))) {
    throw new TurnError('TURN_BAD_CIDR', `invalid CIDR ${JSON.stringify(text)}`);
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

const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
const NAT64_PREFIX = Buffer.from([0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0]);

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
    const forms = [ip];
    // An IPv4-mapped or NAT64 address reaches the embedded IPv4 address: judge that too.
    if (ip.length === 16 && (ip.subarray(0, 12).equals(MAPPED_PREFIX) || ip.subarray(0, 12).equals(NAT64_PREFIX))) {
      forms.push(ip.subarray(12));
    }
    if (forms.some((f) => this.allowList.some((c) => matches(c, f)))) {
      // Allowed only if every form is allowed or not denied.
      return forms.every((f) => this.allowList.some((c) => matches(c, f)) || !this.denyList.some((c) => matches(c, f)));
    }
    return !forms.some((f) => this.denyList.some((c) => matches(c, f)));
  }
}
