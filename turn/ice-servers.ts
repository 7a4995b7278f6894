/**
 * The `welcome.iceServers` a signaling server hands each peer: STUN and TURN URLs with TURN
 * REST credentials minted for that peer (turn/credentials.ts). Plug the result into
 * `listenSignaling({ iceServers })`.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { mintTurnCredentials } from './credentials.js';
import { TurnError } from './errors.js';

/** W3C RTCIceServer (the shape `welcome.iceServers` carries). */
export interface TurnIceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface TurnIceServersOptions {
  /** The TURN REST secret (coturn `static-auth-secret`); at least 16 bytes. */
  secret: string | Buffer;
  /** Seconds a minted credential is valid. Default 43200 (12 h): see DEFAULT_TURN_TTL. */
  ttl?: number;
  /**
   * URLs of an external TURN server (coturn), e.g. `turn:turn.example.com:3478?transport=udp`.
   * `stun:` URLs are handed out without credentials. When absent, `port` (and `publicHost`)
   * describe the embedded server.
   */
  urls?: string[];
  /** UDP port of the embedded TURN server (it also answers STUN Binding). */
  port?: number;
  /**
   * Host name or address put in the URLs. Default: the hostname the client used to reach the
   * signaling service (its Host header), so one configuration works on localhost, a LAN
   * address and a public name alike.
   */
  publicHost?: string;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/**
 * 12 hours. A peer gets its credentials once, in `welcome`, and its TURN client keeps
 * refreshing the allocation with them (RFC 8656 section 7): a credential that expired
 * mid-game would cut the relayed peer off. 12 h outlasts a game session, while a leaked
 * credential stops working the same day (coturn's usual is 24 h).
 */
export const DEFAULT_TURN_TTL = 43_200;

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** `host` as it goes in a STUN/TURN URI (RFC 7064/7065): IPv6 in brackets. */
function uriHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/**
 * The hostname of a Host header (`name`, `name:port`, `[v6]:port`), or undefined when it is
 * missing or not a plain host name or address. The header is client-controlled; it only
 * shapes that client's own URLs, but nothing odd is echoed into them.
 */
export function hostFromHeader(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?$/.exec(header);
  if (v6) return isIP(v6[1]!) === 6 ? v6[1] : undefined;
  const m = /^([^:]+)(?::\d{1,5})?$/.exec(header);
  if (!m) return undefined;
  const host = m[1]!;
  return isIP(host) === 4 || HOSTNAME.test(host) ? host : undefined;
}

/** The address the request arrived on, for clients that sent no usable Host header. */
function localHost(request: IncomingMessage): string {
  const addr = request.socket.localAddress ?? '127.0.0.1';
  return addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
}

/**
 * A `listenSignaling({ iceServers })` function: per peer, STUN and TURN URLs with fresh
 * REST credentials (`<expiry>:<peer id>`). Throws TurnError 'bad-config' for a missing port/urls.
 */
export function turnIceServers(options: TurnIceServersOptions): (ctx: { peerId: string; request: IncomingMessage }) => TurnIceServer[] {
  const { secret, urls, port, publicHost, now } = options;
  const ttl = options.ttl ?? DEFAULT_TURN_TTL;
  // Checked now, not at the first join (where it would surface as an `internal` error).
  if (secret.length < 16) throw new TurnError('insecure-config', 'the TURN secret must be at least 16 bytes');
  if (!(Number.isInteger(ttl) && ttl > 0)) throw new TurnError('bad-config', `ttl must be a positive whole number of seconds (got ${ttl})`);
  if (urls === undefined && (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new TurnError('bad-config', 'turnIceServers needs the TURN `port` (or external `urls`)');
  }
  if (urls !== undefined && (urls.length === 0 || urls.some((u) => !/^(stun|stuns|turn|turns):\S+$/.test(u)))) {
    throw new TurnError('bad-config', 'urls must be stun:, stuns:, turn: or turns: URIs (RFC 7064, RFC 7065)');
  }
  if (publicHost !== undefined && isIP(publicHost) === 0 && !HOSTNAME.test(publicHost)) {
    throw new TurnError('bad-config', `publicHost must be a host name or an IP address (got ${publicHost})`);
  }
  const stunUrls = urls?.filter((u) => u.startsWith('stun')) ?? [];
  const turnUrls = urls?.filter((u) => u.startsWith('turn')) ?? [];
  return ({ peerId, request }) => {
    const credentials = mintTurnCredentials(peerId, { secret, ttl, ...(now ? { now } : {}) });
    const auth = { username: credentials.username, credential: credentials.password };
    if (urls !== undefined) {
      const out: TurnIceServer[] = [];
      if (stunUrls.length) out.push({ urls: stunUrls });
      if (turnUrls.length) out.push({ urls: turnUrls, ...auth });
      return out;
    }
    const host = uriHost(publicHost ?? hostFromHeader(request.headers.host) ?? localHost(request));
    // Two entries: STUN takes no credentials (RFC 8489 section 9: Binding is unauthenticated).
    return [{ urls: `stun:${host}:${port}` }, { urls: `turn:${host}:${port}?transport=udp`, ...auth }];
  };
}
