/**
 * DNS-rebinding protection: which Host names a browser may reach the server by, and when
 * that is checked at all.
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { hostname } from 'node:os';
import type { ResolvedOptions } from './options.js';
import { normalizeAddress } from './source.js';

/** The host name of a Host header (`name`, `name:port`, `[v6]:port`), lower case; null when malformed. */
export function hostOf(header: string | undefined): string | null {
  if (!header) return null;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?$/.exec(header);
  if (v6) return isIP(v6[1]!) === 6 ? v6[1]!.toLowerCase() : null;
  const m = /^([^:\s]+)(?::\d{1,5})?$/.exec(header);
  return m ? m[1]!.toLowerCase().replace(/\.$/, '') : null;
}

/**
 * Names a browser may reach the server by without being told: `localhost` and names under
 * `.localhost` (RFC 6761 §6.3: they always resolve to loopback), this machine's host name
 * and its mDNS name `<name>.local` (RFC 6762, how LAN boxes are usually reached), and
 * (checked in hostAllowed) any IP literal. A DNS-rebinding page reaches the server under
 * its own domain, which is none of these. (The FQDN needs a DNS lookup: list it if used.)
 */
export function defaultAllowedHosts(machine = hostname()): string[] {
  const name = machine.toLowerCase().replace(/\.$/, '');
  const short = name.split('.')[0]!;
  return [...new Set(['localhost', '.localhost', name, short, `${short}.local`])];
}

/**
 * DNS rebinding check: the Host header names this server. `allowed` entries are exact names
 * or, starting with a dot, a domain and every name under it (like Vite's `allowedHosts`).
 */
export function hostAllowed(request: IncomingMessage, allowed: '*' | readonly string[]): boolean {
  if (allowed === '*') return true;
  const host = hostOf(request.headers.host);
  if (host === null) return false;
  if (isIP(host) !== 0) return true;
  for (const entry of allowed) {
    if (entry.startsWith('.') ? host === entry.slice(1) || host.endsWith(entry) : host === entry) return true;
  }
  return false;
}

/**
 * Addresses a rebinding page can make a browser reach but the public internet cannot:
 * loopback (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3), private IPv4 (RFC 1918), shared address
 * space (RFC 6598, also Tailscale's), link-local (RFC 3927, RFC 4291 §2.5.6), unique-local
 * IPv6 (RFC 4193), and the unspecified address. IPv4-mapped IPv6 is read as its IPv4.
 */
const PRIVATE = new BlockList();
for (const [net, len] of [
  ['127.0.0.0', 8],
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['100.64.0.0', 10],
  ['169.254.0.0', 16],
  ['0.0.0.0', 32],
] as const) {
  PRIVATE.addSubnet(net, len, 'ipv4');
}
for (const [net, len] of [
  ['::1', 128],
  ['::', 128],
  ['fc00::', 7],
  ['fe80::', 10],
] as const)
  PRIVATE.addSubnet(net, len, 'ipv6');

/** True when `address` (a socket's local address) is loopback, private, link-local or unique-local. */
export function isPrivateAddress(address: string | undefined): boolean {
  if (address === undefined) return true; // unknown: check, the safe side
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  const addr = mapped ? mapped[1]! : address.replace(/%.*$/, ''); // zone index of fe80::1%eth0
  const family = isIP(addr);
  if (family === 0) return true;
  return PRIVATE.check(addr, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Whether an upgrade's Host is checked. Only browsers can be made to rebind DNS, and they
 * always send Origin on a WebSocket upgrade. An explicit `allowedHosts` list always applies.
 * By default the check targets the real threat: a rebinding page can only make its
 * visitor's browser reach a server it could not reach itself, one on a loopback or private
 * address (a developer's `npm start`, a LAN box). So it runs when the connection arrived
 * on such a local address and not through a trusted proxy (a reverse proxy routes by Host
 * itself), and only with the default (same-origin) origin check: an explicit origin list
 * already refuses the rebinding page's origin. A public deployment (the CLI behind a TLS
 * proxy, `attachSignaling` in an app's server on a public address) is left alone.
 */
export function hostChecked(request: IncomingMessage, options: ResolvedOptions): boolean {
  if (request.headers.origin === undefined || options.allowedHosts === '*') return false;
  if (options.allowedHostsExplicit) return true;
  if (options.allowedOrigins !== undefined) return false;
  if (viaTrustedProxy(request, options)) return false;
  return isPrivateAddress(request.socket.localAddress);
}

/** The request came from a trusted proxy (`trustProxy`) that said it forwarded it (X-Forwarded-For). */
function viaTrustedProxy(request: IncomingMessage, options: ResolvedOptions): boolean {
  const trust = options.proxyTrust;
  if (trust === null || request.headers['x-forwarded-for'] === undefined) return false;
  if (typeof trust === 'number') return true;
  const peer = normalizeAddress(request.socket.remoteAddress ?? '');
  return peer !== null && trust.check(peer);
}
