/**
 * When the DNS-rebinding Host check runs by default: only on a connection that arrived on a
 * loopback/private/link-local local address, not forwarded by a trusted proxy. A public
 * local address cannot be had in a test on loopback, so the decision is tested here as pure
 * functions; test/adversarial/dns-rebinding.test.ts covers it with real sockets.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { defaultAllowedHosts, hostChecked, isPrivateAddress } from '../../signaling/server/host-check.js';
import { resolveOptions, type SignalingServerOptions } from '../../signaling/server/options.js';

const request = (localAddress: string, headers: Record<string, string> = {}, remoteAddress = '198.51.100.9'): IncomingMessage =>
  ({ headers: { origin: 'https://play.example.com', host: 'play.example.com', ...headers }, socket: { localAddress, remoteAddress } }) as unknown as IncomingMessage;

describe('isPrivateAddress', () => {
  it('is true for loopback, RFC 1918, shared, link-local and unique-local addresses', () => {
    for (const a of [
      '127.0.0.1',
      '127.8.9.10',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.20',
      '100.64.0.1',
      '169.254.3.4',
      '::1',
      'fd12:3456::1',
      'fc00::5',
      'fe80::1',
      'fe80::1%eth0',
      '::ffff:192.168.0.7',
      '::ffff:127.0.0.1',
    ]) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
  });

  it('is false for public addresses', () => {
    for (const a of ['203.0.113.7', '8.8.8.8', '172.32.0.1', '192.169.0.1', '11.0.0.1', '2001:db8::1', '2a00:1450::1', '::ffff:203.0.113.7']) {
      expect(isPrivateAddress(a), a).toBe(false);
    }
  });

  it('errs on the checking side when the address is unknown', () => {
    expect(isPrivateAddress(undefined)).toBe(true);
    expect(isPrivateAddress('not an address')).toBe(true);
  });
});

describe('defaultAllowedHosts', () => {
  it('allows localhost, the machine name, its short name and its mDNS name', () => {
    expect(defaultAllowedHosts('MyBox')).toEqual(['localhost', '.localhost', 'mybox', 'mybox.local']);
    expect(defaultAllowedHosts('build-7.corp.example.')).toEqual(['localhost', '.localhost', 'build-7.corp.example', 'build-7', 'build-7.local']);
  });
});

describe('hostChecked (default: only where rebinding is a threat)', () => {
  const opts = (o: SignalingServerOptions = {}): ReturnType<typeof resolveOptions> => resolveOptions(o);

  it('checks a browser upgrade that arrived on a loopback or private local address', () => {
    expect(hostChecked(request('127.0.0.1'), opts())).toBe(true);
    expect(hostChecked(request('192.168.1.20'), opts())).toBe(true);
    expect(hostChecked(request('::ffff:10.0.0.2'), opts())).toBe(true);
  });

  it('leaves one that arrived on a public local address alone (a public deployment)', () => {
    expect(hostChecked(request('203.0.113.7'), opts())).toBe(false);
    expect(hostChecked(request('2001:db8::7'), opts())).toBe(false);
  });

  it('leaves one forwarded by a trusted proxy alone, not one merely claiming to be', () => {
    const fwd = { 'x-forwarded-for': '198.51.100.9' };
    expect(hostChecked(request('127.0.0.1', fwd, '127.0.0.1'), opts({ trustProxy: ['127.0.0.1'] }))).toBe(false);
    expect(hostChecked(request('127.0.0.1', fwd, '::ffff:127.0.0.1'), opts({ trustProxy: 1 }))).toBe(false);
    // Not from a listed proxy, or no forwarding header: checked.
    expect(hostChecked(request('127.0.0.1', fwd, '127.0.0.2'), opts({ trustProxy: ['127.0.0.1'] }))).toBe(true);
    expect(hostChecked(request('127.0.0.1', {}, '127.0.0.1'), opts({ trustProxy: ['127.0.0.1'] }))).toBe(true);
    expect(hostChecked(request('127.0.0.1', fwd, '127.0.0.1'), opts())).toBe(true);
  });

  it('always applies an explicit allowedHosts list; "*", no Origin or an explicit origin list turn the default off', () => {
    expect(hostChecked(request('203.0.113.7'), opts({ allowedHosts: ['play.example.com'] }))).toBe(true);
    expect(hostChecked(request('127.0.0.1'), opts({ allowedHosts: '*' }))).toBe(false);
    expect(hostChecked(request('127.0.0.1', { origin: undefined as unknown as string }), opts())).toBe(false);
    expect(hostChecked(request('127.0.0.1'), opts({ allowedOrigins: ['https://play.example.com'] }))).toBe(false);
  });
});
