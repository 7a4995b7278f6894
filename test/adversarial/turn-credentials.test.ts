/**
 * TURN credentials came with every join: one WebSocket minted 128 usernames in 1.6 s by
 * join/leave, each good for its own allocations. One connection now gets one credential:
 * rejoins on it reuse the ICE servers of its first join.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ICE_SERVERS_MAX_AGE_MS, ICE_SERVERS_MIN_AGE_MS, iceServersReuseMs } from '../../signaling/server/ice-refresh.js';
import { turnIceServers } from '../../turn/ice-servers.js';
import { cleanup } from '../helpers/resources.js';
import { startFakeClockServer, startServer } from '../helpers/server.js';

afterEach(cleanup);

const usernameOf = (servers: { username?: string }[]): string | undefined => servers.find((s) => s.username !== undefined)?.username;

describe('adversarial: minting TURN credentials by join/leave', () => {
  it('hands one connection one credential, however often it rejoins', async () => {
    let minted = 0;
    const mint = turnIceServers({ secret: 'turn-credentials-secret-0123456789', port: 3478 });
    const srv = await startServer({
      iceServers: (ctx) => {
        minted++;
        return mint(ctx);
      },
    });
    const c = await srv.connect();
    const usernames = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) {
      const welcome = await c.join(`room-${i % 3}`);
      usernames.add(usernameOf(welcome.iceServers));
      c.send({ type: 'leave' });
    }
    expect(minted).toBe(1);
    expect(usernames.size).toBe(1);
    expect([...usernames][0]).toMatch(/^\d+:[A-Za-z0-9_-]+$/);

    // Another connection is another credential.
    const other = await srv.connect();
    expect(usernameOf((await other.join('room-0')).iceServers)).not.toBe([...usernames][0]);
    expect(minted).toBe(2);
  });

  it('mints a fresh credential for a rejoin once the connection credential is past half its lifetime', async () => {
    // The REST expiry is wall-clock seconds, read once at mint to learn the lifetime (600 s);
    // the age is measured on the server's (fake) clock, so the test need not wait.
    const mint = turnIceServers({ secret: 'turn-credentials-secret-0123456789', port: 3478, ttl: 600 });
    const srv = await startFakeClockServer({ iceServers: mint, limits: { pingIntervalMs: 24 * 3600_000 } });
    const c = await srv.connect();
    const first = usernameOf((await c.join('r')).iceServers);
    c.send({ type: 'leave' });
    expect(usernameOf((await c.join('r')).iceServers)).toBe(first);
    srv.clock.advance(290_000); // joined: no join deadline runs meanwhile
    c.send({ type: 'leave' });
    expect(usernameOf((await c.join('r')).iceServers)).toBe(first);
    srv.clock.advance(11_000); // 301 s: past half of 600 s
    c.send({ type: 'leave' });
    const fresh = usernameOf((await c.join('r')).iceServers);
    expect(fresh).not.toBe(first);
    expect(Number(fresh!.split(':')[0])).toBeGreaterThanOrEqual(Number(first!.split(':')[0]));
    // And the fresh one is reused again.
    c.send({ type: 'leave' });
    expect(usernameOf((await c.join('r')).iceServers)).toBe(fresh);
  });

  it('reuses opaque credentials (no REST expiry) for at most ICE_SERVERS_MAX_AGE_MS', async () => {
    let n = 0;
    const srv = await startFakeClockServer({ iceServers: () => [{ urls: 'turn:t.example', username: `opaque-${++n}`, credential: 'x' }], limits: { pingIntervalMs: 24 * 3600_000 } });
    const c = await srv.connect();
    expect(usernameOf((await c.join('r')).iceServers)).toBe('opaque-1');
    srv.clock.advance(ICE_SERVERS_MAX_AGE_MS);
    c.send({ type: 'leave' });
    expect(usernameOf((await c.join('r')).iceServers)).toBe('opaque-2');
  });

  it('does not read a custom username that merely starts with digits and a colon as long expired: rejoins reuse it', async () => {
    let minted = 0;
    const srv = await startServer({ iceServers: () => [{ urls: 'turn:t.example', username: `42:alice-${++minted}`, credential: 'x' }] });
    const c = await srv.connect();
    for (let i = 0; i < 10; i++) {
      expect(usernameOf((await c.join('r')).iceServers)).toBe('42:alice-1');
      c.send({ type: 'leave' });
    }
    expect(minted).toBe(1);
  });

  it('iceServersReuseMs: half the shortest REST lifetime left, the max age otherwise', () => {
    const wall = 1_800_000_000_000;
    const at = (s: number): string => `${wall / 1000 + s}:peer`;
    expect(iceServersReuseMs([{ urls: 'stun:x' }, { urls: 'turn:x', username: at(600), credential: 'p' }], wall)).toBe(300_000);
    expect(
      iceServersReuseMs(
        [
          { urls: 'turn:a', username: at(600), credential: 'p' },
          { urls: 'turn:b', username: at(100), credential: 'p' },
        ],
        wall,
      ),
    ).toBe(50_000);
    // An expiry already past at mint time is implausible: the username is opaque.
    expect(iceServersReuseMs([{ urls: 'turn:x', username: at(-5), credential: 'p' }], wall)).toBe(ICE_SERVERS_MAX_AGE_MS);
    expect(iceServersReuseMs([{ urls: 'turn:x', username: '42:alice', credential: 'p' }], wall)).toBe(ICE_SERVERS_MAX_AGE_MS);
    // At least the minimum, never past the credential's own expiry.
    expect(iceServersReuseMs([{ urls: 'turn:x', username: at(40), credential: 'p' }], wall)).toBe(ICE_SERVERS_MIN_AGE_MS);
    expect(iceServersReuseMs([{ urls: 'turn:x', username: at(10), credential: 'p' }], wall)).toBe(10_000);
    expect(iceServersReuseMs([{ urls: 'turn:x', username: 'alice', credential: 'p' }], wall)).toBe(ICE_SERVERS_MAX_AGE_MS);
    expect(iceServersReuseMs([], wall)).toBe(ICE_SERVERS_MAX_AGE_MS);
  });
});
