/** Permissions and channel bindings of one allocation (turn/relay-state.ts), without sockets. */
import type { Socket } from 'node:dgram';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { canonicalIp } from '../../turn/ip.js';
import { CHANNEL_MS, PERMISSION_MS, RelayState } from '../../turn/relay-state.js';

const NtAddress = createRequire(import.meta.url)('node-turn/lib/address.js') as new (a: string, p: number) => { address: string };
const state = (): RelayState => new RelayState({} as Socket, {} as Socket, '127.0.0.1', 5000);

describe('canonicalIp', () => {
  it('gives the form rinfo.address has, from the forms node-turn parses out of XOR-PEER-ADDRESS', () => {
    expect(canonicalIp('8.8.8.8')).toBe('8.8.8.8');
    expect(canonicalIp('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(canonicalIp('2001:db8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIp('0:0:0:0:0:ffff:7f00:1')).toBe('::ffff:127.0.0.1');
    expect(canonicalIp('2606:4700:4700::1111')).toBe('2606:4700:4700::1111');
    expect(canonicalIp('not-an-ip')).toBeUndefined();
    expect(canonicalIp('')).toBeUndefined();
  });

  it('node-turn lib/address.js expands a datagram source like 2001:db8::1 to seven groups (why node-turn forms are not compared)', () => {
    expect(new NtAddress('2001:db8::1', 1).address.split(':')).toHaveLength(7);
    expect(canonicalIp('2001:db8::1')).toBe('2001:db8::1');
  });
});

describe('RelayState', () => {
  it('a permission lasts PERMISSION_MS and refreshes', () => {
    const r = state();
    const p = r.permit('8.8.8.8', 0);
    expect(p.ip).toEqual(Buffer.from([8, 8, 8, 8]));
    expect(r.permission('8.8.8.8', PERMISSION_MS - 1)).toBe(p);
    expect(r.permission('8.8.8.8', PERMISSION_MS)).toBeUndefined();
    expect(r.permit('8.8.8.8', PERMISSION_MS)).toBe(p);
    expect(r.permission('8.8.8.8', 2 * PERMISSION_MS - 1)).toBe(p);
    expect(r.permission('8.8.4.4', 0)).toBeUndefined();
  });

  it('permissionsFull counts after sweeping expired permissions (RFC 8656 section 9: 300 s)', () => {
    const r = state();
    r.permit('8.8.8.8', 0);
    r.permit('8.8.4.4', 0);
    expect(r.permissionsFull(['1.1.1.1'], PERMISSION_MS - 1, 2)).toBe(true);
    // a permission held already is no new one
    expect(r.permissionsFull(['8.8.8.8'], PERMISSION_MS - 1, 2)).toBe(false);
    expect(r.permissionsFull(['1.1.1.1'], PERMISSION_MS, 2)).toBe(false);
    expect(r.permissionCount).toBe(0);
    expect(r.permissionsFull(['1.1.1.1', '1.0.0.1', '9.9.9.9'], PERMISSION_MS, 2)).toBe(true);
  });

  it('binds a channel to ip:port, installs the permission, and finds it both ways', () => {
    const r = state();
    expect(r.bind(0x4000, '8.8.8.8', 3478, 0)).toBe(true);
    const p = r.permission('8.8.8.8', 1)!;
    expect(p).toBeDefined();
    expect(r.peerChannel(p, 3478, 1)?.number).toBe(0x4000);
    expect(r.peerChannel(p, 3479, 1)).toBeUndefined();
    expect(r.channel(0x4000, 1)).toMatchObject({ address: '8.8.8.8', port: 3478 });
  });

  it('refuses a number bound to another peer and a peer bound to another number (RFC 8656 section 12.2)', () => {
    const r = state();
    expect(r.bind(0x4000, '8.8.8.8', 3478, 0)).toBe(true);
    expect(r.canBind(0x4000, '8.8.8.8', 3479, 1)).toBe(false);
    expect(r.canBind(0x4000, '1.1.1.1', 3478, 1)).toBe(false);
    expect(r.canBind(0x4001, '8.8.8.8', 3478, 1)).toBe(false);
    expect(r.bind(0x4001, '8.8.8.8', 3478, 1)).toBe(false);
    expect(r.canBind(0x4000, '8.8.8.8', 3478, 1)).toBe(true);
    expect(r.bind(0x4001, '8.8.8.8', 3479, 1)).toBe(true);
  });

  it('a binding expires after CHANNEL_MS unless refreshed, and then both lookups forget it', () => {
    const r = state();
    r.bind(0x4000, '8.8.8.8', 3478, 0);
    r.bind(0x4000, '8.8.8.8', 3478, 500_000);
    expect(r.channel(0x4000, CHANNEL_MS + 1)).toBeDefined();
    const p = r.permit('8.8.8.8', 500_000 + CHANNEL_MS);
    expect(r.peerChannel(p, 3478, 500_000 + CHANNEL_MS)).toBeUndefined();
    expect(r.channel(0x4000, 500_000 + CHANNEL_MS)).toBeUndefined();
    // the number and the peer are free again
    expect(r.bind(0x4001, '8.8.8.8', 3478, 500_000 + CHANNEL_MS)).toBe(true);
    expect(r.bind(0x4000, '1.1.1.1', 1, 500_000 + CHANNEL_MS)).toBe(true);
  });

  it('sweeps expired permissions without channels, so a long-lived allocation does not grow without bound', () => {
    const r = state();
    r.bind(0x4000, '8.8.8.8', 3478, 0);
    const size = (): number => (r as unknown as { permissions: Map<string, unknown> }).permissions.size;
    let max = 0;
    // one new peer every 10 s: about 30 permissions live at a time
    for (let i = 0; i < 1000; i++) {
      r.permit(`10.0.${i >> 8}.${i & 255}`, i * 10_000);
      // the channel to 8.8.8.8 is refreshed every 500 s (it lasts 600 s)
      if (i % 50 === 49) expect(r.bind(0x4000, '8.8.8.8', 3478, i * 10_000)).toBe(true);
      max = Math.max(max, size());
    }
    expect(max).toBeLessThanOrEqual(128);
    // its permission entry was never swept with the binding on it: still found from the peer
    const now = 9_990_000;
    expect(r.peerChannel(r.permit('8.8.8.8', now), 3478, now)?.number).toBe(0x4000);
  });
});
