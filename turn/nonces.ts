/**
 * The TURN nonce (RFC 8489 section 9.2): stateless, bound to the client's transport address,
 * expiring after an hour. Replaces node-turn's lib/authentification.js nonces, which came
 * from Math.random, were kept in a map with a one-hour timer each (holding the process open;
 * any spoofed request grew it), and could be replayed from any address for their hour.
 * Stateless nonces need no quota: no request grows server state.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { systemClock } from './clock.js';

/** RFC 8489 section 9.2: a nonce's validity is up to the server; coturn's default is an hour too. */
export const NONCE_TTL_MS = 3_600_000;

/**
 * Nonces: 8 random bytes and the expiry, then an HMAC of both and of the client's IP and port
 * under a per-server key (58 hex characters; no state). Like coturn, a nonce is only good for
 * the transport address it was issued to: a request captured on the wire and replayed from
 * another address gets 438 Stale Nonce (RFC 8489 section 9.2.4), and the fresh nonce it
 * carries is useless to the original sender's MESSAGE-INTEGRITY.
 */
export class Nonces {
  private readonly key = randomBytes(32);

  /** `now`: milliseconds since the epoch (the server passes its clock's). */
  constructor(private readonly now: () => number = systemClock.now) {}

  issue(ip: string, port: number): string {
    const body = `${randomBytes(8).toString('hex')}${Math.floor((this.now() + NONCE_TTL_MS) / 1000)
      .toString(16)
      .padStart(10, '0')}`;
    return body + this.mac(body, ip, port);
  }

  /** True if `nonce` was issued by this server to `ip`:`port` and has not expired. */
  check(nonce: unknown, ip: string, port: number): boolean {
    if (typeof nonce !== 'string' || !/^[0-9a-f]{58}$/.test(nonce)) return false;
    const body = nonce.slice(0, 26);
    if (!timingSafeEqual(Buffer.from(nonce.slice(26), 'hex'), Buffer.from(this.mac(body, ip, port), 'hex'))) return false;
    return parseInt(body.slice(16), 16) * 1000 > this.now();
  }

  private mac(body: string, ip: string, port: number): string {
    return createHmac('sha256', this.key).update(`${body}|${ip}|${port}`).digest('hex').slice(0, 32);
  }
}
