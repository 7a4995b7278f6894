import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientAddress, isCidr, normalizeAddress, resolveProxyTrust, sourceKey } from '../../signaling/server/source.js';

const request = (remoteAddress: string, xff?: string): IncomingMessage => ({ socket: { remoteAddress }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;

describe('source: client address', () => {
  it('is the socket peer without trusted proxies, whatever the header says', () => {
    expect(clientAddress(request('192.0.2.7', '203.0.113.1'), resolveProxyTrust(false))).toBe('192.0.2.7');
    expect(clientAddress(request('::ffff:192.0.2.7'), resolveProxyTrust(undefined))).toBe('192.0.2.7');
  });

  it('counts hops from the right; more hops than entries gives the leftmost', () => {
    const req = request('10.0.0.1', 'spoofed, 198.51.100.1, 203.0.113.2');
    expect(clientAddress(req, resolveProxyTrust(true))).toBe('203.0.113.2');
    expect(clientAddress(req, resolveProxyTrust(2))).toBe('198.51.100.1');
    // The third entry is not an address: the last address a trusted hop vouched for stands.
    expect(clientAddress(req, resolveProxyTrust(3))).toBe('198.51.100.1');
    expect(clientAddress(request('10.0.0.1', '198.51.100.1'), resolveProxyTrust(5))).toBe('198.51.100.1');
    expect(clientAddress(request('10.0.0.1'), resolveProxyTrust(1))).toBe('10.0.0.1');
  });

  it('skips trusted proxies from the right with a list', () => {
    const trust = resolveProxyTrust(['10.0.0.0/8', '2001:db8::/32']);
    expect(clientAddress(request('10.0.0.1', '1.1.1.1, 198.51.100.9, 2001:db8::5, 10.2.3.4'), trust)).toBe('198.51.100.9');
    expect(clientAddress(request('192.0.2.1', '198.51.100.9'), trust)).toBe('192.0.2.1');
  });

  it('normalizes ports, brackets and IPv4-mapped addresses, and refuses what is not an address', () => {
    expect(normalizeAddress(' 203.0.113.1:443 ')).toBe('203.0.113.1');
    expect(normalizeAddress('[2001:db8::1]:80')).toBe('2001:db8::1');
    expect(normalizeAddress('::FFFF:203.0.113.1')).toBe('203.0.113.1');
    expect(normalizeAddress('unknown')).toBeNull();
    expect(isCidr('10.0.0.0/8')).toBe(true);
    expect(isCidr('10.0.0.0/33')).toBe(false);
    expect(isCidr('2001:db8::/129')).toBe(false);
    expect(isCidr('example.com')).toBe(false);
  });
});

describe('source: per-IP key', () => {
  it('keeps IPv4 whole and masks IPv6 to its prefix', () => {
    expect(sourceKey('203.0.113.1', 64)).toBe('203.0.113.1');
    expect(sourceKey('2001:db8:1:2:3:4:5:6', 64)).toBe('2001:db8:1:2:0:0:0:0/64');
    expect(sourceKey('2001:db8:1:2::9', 64)).toBe(sourceKey('2001:db8:1:2:ffff::1', 64));
    expect(sourceKey('2001:db8:1:2::9', 56)).toBe('2001:db8:1:0:0:0:0:0/56');
    expect(sourceKey('2001:db8:1:ff::9', 56)).toBe('2001:db8:1:0:0:0:0:0/56');
    expect(sourceKey('2001:db8:1:100::9', 56)).toBe('2001:db8:1:100:0:0:0:0/56');
    expect(sourceKey('::1', 128)).toBe('0:0:0:0:0:0:0:1/128');
    expect(sourceKey('::ffff:198.51.100.1', 64)).toBe('198.51.100.1');
    expect(sourceKey('64:ff9b::198.51.100.1', 128)).toBe('64:ff9b:0:0:0:0:c633:6401/128');
  });
});
