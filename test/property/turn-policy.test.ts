/**
 * The TURN peer policy over every IPv6 form that embeds an IPv4 address (IPv4-compatible,
 * IPv4-mapped, IPv4-translated, NAT64, 6to4, Teredo): such an address reaches the IPv4
 * address, so it is never allowed when that IPv4 address is denied, whatever the policy.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PeerPolicy } from '../../turn/index.js';

const hex = (a: number, b: number): string => ((a << 8) | b).toString(16);

/** The IPv6 forms of IPv4 address q (four octets), in text. */
function embeddings(q: number[]): Record<string, string> {
  const [a, b, c, d] = q as [number, number, number, number];
  const dotted = q.join('.');
  const inv = q.map((x) => x ^ 0xff) as [number, number, number, number];
  return {
    compatible: `::${dotted}`,
    'compatible hex': `::${hex(a, b)}:${hex(c, d)}`,
    mapped: `::ffff:${dotted}`,
    translated: `::ffff:0:${dotted}`,
    nat64: `64:ff9b::${dotted}`,
    '6to4': `2002:${hex(a, b)}:${hex(c, d)}::1`,
    'teredo server': `2001:0:${hex(a, b)}:${hex(c, d)}::1`,
    'teredo client': `2001:0:102:304:0:ffff:${hex(inv[0], inv[1])}:${hex(inv[2], inv[3])}`,
  };
}

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
const policies: [string, PeerPolicy][] = [
  ['default', new PeerPolicy()],
  ['default with 10.0.0.0/8 and 2002::/16 allowed', new PeerPolicy({ allow: ['10.0.0.0/8', '2002::/16'] })],
  ['a custom IPv4-only deny list', new PeerPolicy({ deny: ['10.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16'] })],
  ['everything IPv6 allowed', new PeerPolicy({ allow: ['::/0'] })],
];

describe('PeerPolicy: IPv6 forms embedding IPv4', () => {
  it.each(['::10.0.0.1', '::127.0.0.1', '::ffff:0:10.0.0.1', '::ffff:0:127.0.0.1', '::ffff:0:a9fe:a9fe', 'fec0::1', 'feff::1', '2001:0:a00:1::1'])('refuses %s by default', (a) =>
    expect(new PeerPolicy().allows(a)).toBe(false),
  );

  it.each(policies)('never allows an embedded form of a denied IPv4 address (%s)', (_name, policy) => {
    fc.assert(
      fc.property(ipv4, (q) => {
        if (policy.allows(q.join('.'))) return;
        for (const [form, text] of Object.entries(embeddings(q))) {
          expect([form, text, policy.allows(text)]).toEqual([form, text, false]);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('an IPv4-mapped public address is judged by its IPv4 address', () => {
    fc.assert(
      fc.property(ipv4, (q) => {
        const policy = new PeerPolicy();
        expect(policy.allows(`::ffff:${q.join('.')}`)).toBe(policy.allows(q.join('.')));
      }),
      { numRuns: 2000 },
    );
  });
});
