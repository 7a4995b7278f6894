/**
 * A coturn `turnserver.conf` equivalent to the embedded TURN server's policy: the same REST
 * secret (`use-auth-secret`), the same peer deny list (DEFAULT_DENIED_PEERS) written as
 * `denied-peer-ip` ranges plus the IPv4-mapped and NAT64 ranges, no TCP relay, quotas and
 * no admin CLI. `rallypoint coturn-config` prints it.
 */
import { isIP } from 'node:net';
import { TurnError } from './errors.js';
import { DEFAULT_DENIED_PEERS, parseCidr } from './policy.js';
import { DEFAULT_TURN_QUOTAS } from './quotas.js';

export interface CoturnConfigOptions {
  /** The TURN REST secret shared with the signaling server (at least 16 characters). */
  secret: string;
  /** Default 'rallypoint', the embedded server's realm. */
  realm?: string;
  /** Interfaces to listen on (default: coturn listens on all). */
  listeningIps?: readonly string[];
  /** UDP/TCP port (default 3478). */
  listeningPort?: number;
  /** Address relay sockets are bound to. */
  relayIp?: string;
  /** Public address advertised for hosts behind 1:1 NAT (`public` or `public/private`). */
  externalIp?: string;
  /** CIDRs relayed to even when denied (LANs, tests). */
  allow?: readonly string[];
  /** Allocations per user (default: the embedded server's, DEFAULT_TURN_QUOTAS). */
  userQuota?: number;
  /** Allocations in total (default: the embedded server's, DEFAULT_TURN_QUOTAS). */
  totalQuota?: number;
  /** Bytes per second per session (unset: coturn's default, unlimited). */
  maxBps?: number;
  /** TLS certificate and key; without both, TLS and DTLS listeners are off. */
  cert?: string;
  pkey?: string;
}

/** IPv4-mapped IPv6 (::ffff:0:0/96): coturn 4.6.1 relays to ::ffff:127.0.0.1 (CVE-2026-27624). */
export const COTURN_MAPPED_RANGE = '::ffff:0.0.0.0-::ffff:255.255.255.255';
/** NAT64 well-known prefix (64:ff9b::/96): reaches the embedded IPv4 address through a NAT64. */
export const COTURN_NAT64_RANGE = '64:ff9b::-64:ff9b::ffff:ffff';

function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  // Compress the longest run of two or more zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** A CIDR as the "first-last" range coturn's `denied-peer-ip`/`allowed-peer-ip` take. */
export function cidrToRange(cidr: string): string {
  const { bytes, prefix } = parseCidr(cidr);
  const first = Buffer.from(bytes);
  const last = Buffer.from(bytes);
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    const mask = 0x80 >> (bit & 7);
    first[bit >> 3]! &= ~mask & 0xff;
    last[bit >> 3]! |= mask;
  }
  const a = formatIp(first);
  const b = formatIp(last);
  return a === b ? a : `${a}-${b}`;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new TurnError('insecure-config', message);
}

const LOOPBACK = ['127.0.0.0/8', '::1/128'].map(parseCidr);

function overlapsLoopback(cidr: string): boolean {
  const c = parseCidr(cidr);
  return LOOPBACK.some((l) => {
    if (l.bytes.length !== c.bytes.length) return false;
    const p = Math.min(l.prefix, c.prefix);
    for (let bit = 0; bit < p; bit++) {
      const mask = 0x80 >> (bit & 7);
      if ((l.bytes[bit >> 3]! & mask) !== (c.bytes[bit >> 3]! & mask)) return false;
    }
    return true;
  });
}

/** The turnserver.conf text; every directive is commented with its reason. */
export function coturnConfig(options: CoturnConfigOptions): string {
  const { secret } = options;
  check(typeof secret === 'string' && secret.length >= 16, 'the TURN secret must be at least 16 characters');
  check(!/[\r\n]/.test(secret), 'the TURN secret must not contain line breaks');
  const realm = options.realm ?? 'rallypoint';
  check(/^[A-Za-z0-9.\-_]+$/.test(realm), `invalid realm ${JSON.stringify(realm)}`);
  const port = options.listeningPort ?? 3478;
  check(Number.isInteger(port) && port > 0 && port <= 65535, `invalid listening port ${port}`);
  for (const ip of [...(options.listeningIps ?? []), ...(options.relayIp ? [options.relayIp] : [])]) {
    check(isIP(ip) !== 0, `invalid IP address ${JSON.stringify(ip)}`);
  }
  if (options.externalIp !== undefined) {
    const parts = options.externalIp.split('/');
    check(parts.length <= 2 && parts.every((p) => isIP(p) !== 0), `invalid external IP ${JSON.stringify(options.externalIp)}`);
  }
  const userQuota = options.userQuota ?? DEFAULT_TURN_QUOTAS.maxAllocationsPerUser;
  const totalQuota = options.totalQuota ?? DEFAULT_TURN_QUOTAS.maxAllocations;
  for (const [name, n] of [['user quota', userQuota], ['total quota', totalQuota], ...(options.maxBps !== undefined ? [['max bps', options.maxBps] as const] : [])] as const) {
    check(Number.isInteger(n) && n >= 1, `invalid ${name} ${n}`);
  }
  check((options.cert === undefined) === (options.pkey === undefined), 'cert and pkey must be given together');
  const allow = (options.allow ?? []).map((c) => ({ cidr: c, range: cidrToRange(c) }));

  const lines: string[] = [
    '# turnserver.conf generated by `rallypoint coturn-config` (coturn 4.6.x).',
    '# Same credentials and peer policy as the embedded TURN server (rallypoint/turn).',
    '',
    '# TURN REST API credentials: username "<unix expiry>:<peer id>",',
    '# password base64(HMAC-SHA1(secret, username)), minted by the signaling server.',
    '# (Implies the long-term credential mechanism: never an open relay. Not combined with',
    '# lt-cred-mech, which coturn reports as a configuration alert.)',
    'use-auth-secret',
    '# The shared secret (keep this file private: mode 0600).',
    `static-auth-secret=${secret}`,
    '# Realm for long-term credentials; the same as the embedded server.',
    `realm=${realm}`,
    '',
  ];
  for (const ip of options.listeningIps ?? []) lines.push('# Interface to listen on.', `listening-ip=${ip}`);
  lines.push('# UDP and TCP port clients reach the server on.', `listening-port=${port}`);
  if (options.relayIp) lines.push('# Address the relay sockets are bound to.', `relay-ip=${options.relayIp}`);
  if (options.externalIp) lines.push('# Public address advertised in XOR-RELAYED-ADDRESS (host behind 1:1 NAT).', `external-ip=${options.externalIp}`);
  lines.push(
    '',
    '# Relay UDP only (what WebRTC uses): TCP relays (RFC 6062) would let clients open',
    '# TCP connections from this host.',
    'no-tcp-relay',
    '# Allocations per user and in total, so one credential cannot exhaust the relay ports.',
    `user-quota=${userQuota}`,
    `total-quota=${totalQuota}`,
  );
  if (options.maxBps !== undefined) lines.push('# Bandwidth cap per session (bytes/s).', `max-bps=${options.maxBps}`);
  lines.push(
    '# No telnet admin CLI: it listens on a port and has a default password.',
    'no-cli',
    '# Add FINGERPRINT to responses (RFC 8489), as browsers and the embedded server do.',
    'fingerprint',
    '# Nonces expire (seconds), limiting replay of captured requests.',
    'stale-nonce=600',
    '# Never relay to multicast peers (also in the deny list below).',
    'no-multicast-peers',
  );
  if (options.cert !== undefined && options.pkey !== undefined) {
    lines.push('# TLS/DTLS certificate and key (turns: and DTLS listeners).', `cert=${options.cert}`, `pkey=${options.pkey}`);
  } else {
    lines.push('# No certificate given: no TLS or DTLS listeners (coturn would use a self-signed one).', 'no-tls', 'no-dtls');
  }
  if (allow.some((a) => overlapsLoopback(a.cidr))) {
    lines.push(
      '',
      "# The allow list names loopback: lift coturn's built-in loopback refusal, which",
      '# allowed-peer-ip cannot override; the deny list below still refuses every loopback',
      '# address that is not explicitly allowed.',
      'allow-loopback-peers',
    );
  }
  lines.push(
    '',
    '# Peer address policy (RFC 8656 section 21.3): never relay to loopback, private, CGNAT,',
    "# link-local, multicast, reserved or documentation ranges (eturnal's recommended list,",
    '# DEFAULT_DENIED_PEERS in rallypoint/turn), so the relay cannot reach internal services',
    '# or the cloud metadata address.',
  );
  for (const cidr of DEFAULT_DENIED_PEERS) {
    const range = cidrToRange(cidr);
    if (range === '::') {
      // coturn reads an all-zero range bound as "unbounded": `denied-peer-ip=::` would deny
      // every peer. coturn refuses the unspecified address itself (ioa_addr_is_zero).
      lines.push(`# ${cidr}: refused by coturn itself; "denied-peer-ip=::" would deny every peer`);
      continue;
    }
    if (range.startsWith('::-')) {
      // Same reading of an all-zero lower bound: start after the unspecified address.
      lines.push(`# ${cidr} (from ::1: coturn refuses :: itself)`, `denied-peer-ip=::1${range.slice(2)}`);
      continue;
    }
    lines.push(`# ${cidr}`, `denied-peer-ip=${range}`);
  }
  lines.push(
    '# IPv4-mapped IPv6 (::ffff:0:0/96) reaches the embedded IPv4 address: coturn 4.6.1 relays',
    '# to ::ffff:127.0.0.1 despite its loopback check (CVE-2026-27624). Deny the whole range.',
    `denied-peer-ip=${COTURN_MAPPED_RANGE}`,
    '# NAT64 (64:ff9b::/96) also embeds IPv4 addresses (denied above as well; stated for clarity).',
    `denied-peer-ip=${COTURN_NAT64_RANGE}`,
  );
  if (allow.length) {
    lines.push('', '# Allow list (LANs, tests): relayed to even though denied above.');
    for (const a of allow) lines.push(`# ${a.cidr}`, `allowed-peer-ip=${a.range}`);
  }
  return `${lines.join('\n')}\n`;
}
