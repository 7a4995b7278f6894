/** turnIceServers (what signaling hands peers) and the CLI's TURN address defaults. */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { turnListenAddress, turnRelayAddress } from '../../signaling/cli/turn.js';
import { hostFromHeader, TurnError, turnIceServers, verifyTurnCredentials } from '../../turn/index.js';

const SECRET = 'ice-servers-test-secret-000';

function request(host: string | undefined, localAddress = '127.0.0.1'): IncomingMessage {
  return { headers: host === undefined ? {} : { host }, socket: { localAddress } } as unknown as IncomingMessage;
}

describe('turnIceServers', () => {
  it('mints fresh credentials per peer, valid for ttl seconds', () => {
    const now = 1_700_000_000_000;
    const fn = turnIceServers({ secret: SECRET, port: 3478, ttl: 120, now: () => now });
    const [stun, turn] = fn({ peerId: 'abc', request: request('game.example:8080') });
    expect(stun).toEqual({ urls: 'stun:game.example:3478' });
    expect(turn).toMatchObject({ urls: 'turn:game.example:3478?transport=udp', username: '1700000120:abc' });
    expect(verifyTurnCredentials(turn!.username!, turn!.credential!, { secret: SECRET, now: () => now })).toBe(true);
    expect(fn({ peerId: 'xyz', request: request('game.example') })[1]!.username).toBe('1700000120:xyz');
  });

  it('falls back to the local address for a missing or odd Host header; unwraps IPv4-mapped', () => {
    const fn = turnIceServers({ secret: SECRET, port: 5000 });
    expect(fn({ peerId: 'a', request: request(undefined, '::ffff:10.1.2.3') })[0]).toEqual({ urls: 'stun:10.1.2.3:5000' });
    expect(fn({ peerId: 'a', request: request('a b', '::1') })[0]).toEqual({ urls: 'stun:[::1]:5000' });
  });

  it('reads host names, IPv4 and bracketed IPv6 from Host headers and nothing else', () => {
    expect(hostFromHeader('example.com:443')).toBe('example.com');
    expect(hostFromHeader('10.0.0.7')).toBe('10.0.0.7');
    expect(hostFromHeader('[2001:db8::1]:80')).toBe('2001:db8::1');
    for (const bad of ['', 'a/b', 'a@b', '[zz]:1', 'x:y:z', '-lead.example', 'a..b', 'ex ample']) expect(hostFromHeader(bad)).toBeUndefined();
  });

  it('refuses configurations that cannot work', () => {
    const code = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (err) {
        return err instanceof TurnError ? err.code : 'other';
      }
      return undefined;
    };
    expect(code(() => turnIceServers({ secret: SECRET }))).toBe('bad-config');
    expect(code(() => turnIceServers({ secret: SECRET, port: 70000 }))).toBe('bad-config');
    expect(code(() => turnIceServers({ secret: SECRET, port: 1, ttl: 0 }))).toBe('bad-config');
    expect(code(() => turnIceServers({ secret: SECRET, urls: ['http://x'] }))).toBe('bad-config');
    expect(code(() => turnIceServers({ secret: SECRET, port: 1, publicHost: 'a/b' }))).toBe('bad-config');
    // At creation, not at the first join (where it would be an `internal` error).
    expect(code(() => turnIceServers({ secret: 'short', port: 1 }))).toBe('insecure-config');
  });
});

describe('CLI TURN addresses', () => {
  it('listens where signaling does unless told otherwise; relays from a concrete address', () => {
    expect(turnListenAddress(undefined, '10.1.1.1')).toBe('10.1.1.1');
    expect(turnListenAddress(undefined, 'localhost')).toBe('127.0.0.1');
    expect(turnListenAddress(undefined, undefined)).toBe('0.0.0.0');
    expect(turnListenAddress(undefined, 'game.example')).toBe('0.0.0.0');
    expect(turnListenAddress('192.0.2.1', '10.1.1.1')).toBe('192.0.2.1');
    expect(turnRelayAddress('10.9.9.9', '0.0.0.0')).toBe('10.9.9.9');
    expect(turnRelayAddress(undefined, '10.1.1.1')).toBe('10.1.1.1');
    const wildcard = turnRelayAddress(undefined, '0.0.0.0');
    expect(wildcard).not.toBe('0.0.0.0');
    expect(wildcard).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });
});
