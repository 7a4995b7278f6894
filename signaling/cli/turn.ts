/**
 * The embedded TURN server as the CLI runs it: with `serve` (next to signaling, sharing its
 * secret and /metrics) and alone with `rallypoint turn`.
 */

import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Registry } from 'prom-client';
import { restCredentialLookup } from '../../turn/credentials.js';
import { TurnServer } from '../../turn/server.js';

export interface EmbeddedTurn {
  server: TurnServer;
  address: string;
  port: number;
  relayAddress: string;
  /** The line printed on stdout once it listens. */
  startLine: string;
}

/** This machine's first non-internal IPv4 address, if any. */
function firstExternalIPv4(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

/**
 * The TURN listen address: --turn-host, else the signaling --host when it is an address
 * (`localhost` counts as 127.0.0.1), else all interfaces.
 */
export function turnListenAddress(turnHost: string | undefined, host: string | undefined): string {
  if (turnHost !== undefined) return turnHost;
  if (host === 'localhost') return '127.0.0.1';
  if (host !== undefined && isIP(host) !== 0) return host;
  return '0.0.0.0';
}

/**
 * The host the welcome's STUN/TURN URLs name (`turnIceServers` publicHost): --turn-public-host,
 * else the address given with --turn-host when it is a concrete one (the server listens only
 * there: with `--turn-host ::1`, a URL naming the signaling Host header's 127.0.0.1 reached
 * nothing), else undefined: the host the client reached signaling by.
 */
export function turnUrlHost(publicHost: string | undefined, turnHost: string | undefined): string | undefined {
  if (publicHost !== undefined) return publicHost;
  if (turnHost !== undefined && turnHost !== '0.0.0.0' && turnHost !== '::') return turnHost;
  return undefined;
}

/**
 * Relay sockets need a concrete address: XOR-RELAYED-ADDRESS (RFC 8656 section 18.5) is what
 * peers send to, and 0.0.0.0 is nobody's address.
 */
export function turnRelayAddress(relayIp: string | undefined, listen: string): string {
  if (relayIp !== undefined) return relayIp;
  if (listen !== '0.0.0.0' && listen !== '::') return listen;
  return firstExternalIPv4() ?? '127.0.0.1';
}

export interface EmbeddedTurnConfig {
  secret: string;
  listen: string;
  port: number;
  relayIp?: string | undefined;
  externalIp?: string | undefined;
  allow?: string[] | undefined;
  realm: string;
  registry?: Registry;
  /** IPv6 sources count per prefix of this length for the TURN per-IP limits (default 64), as for signaling. */
  ipv6PrefixLength?: number | undefined;
}

/** Starts the TURN server; rejects with TurnError 'listen-failed' when the port is taken. */
export async function startEmbeddedTurn(cfg: EmbeddedTurnConfig): Promise<EmbeddedTurn> {
  const relayAddress = turnRelayAddress(cfg.relayIp, cfg.listen);
  const server = new TurnServer({
    host: cfg.listen,
    port: cfg.port,
    realm: cfg.realm,
    credentials: restCredentialLookup({ secret: cfg.secret }),
    relayAddress,
    ...(cfg.externalIp !== undefined ? { externalAddress: cfg.externalIp } : {}),
    peers: { allow: cfg.allow ?? [] },
    ...(cfg.registry ? { registry: cfg.registry } : {}),
    ...(cfg.ipv6PrefixLength !== undefined ? { quotas: { ipv6PrefixLength: cfg.ipv6PrefixLength } } : {}),
  });
  const { address, port } = await server.listen();
  const shown = isIP(address) === 6 ? `[${address}]` : address;
  const advertised = cfg.externalIp ?? relayAddress;
  return { server, address, port, relayAddress, startLine: `rallypoint TURN listening on udp://${shown}:${port} (relay ${advertised})` };
}
