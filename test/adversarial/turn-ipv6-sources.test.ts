/**
 * Attack: an IPv6 host holds a whole /64 and can send each request from a new address in it.
 * The TURN server's per-IP limits (request bucket, maxAllocationsPerAddress) counted whole
 * addresses, so such a host had 2^64 budgets. Real sockets: a network namespace whose
 * loopback holds addresses in two /64s, the built server and the clients in one child
 * (test/fixtures/turn/ipv6-sources.mjs). The keying itself is unit-tested in
 * test/turn/quotas.test.ts. The same run pins that such clients are answered at all, with
 * their addresses encoded right.
 */
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { canonicalIp } from '../../turn/ip.js';
import { describeNetns, useNetLab } from '../helpers/netns.js';

const lab = useNetLab();
const fixture = fileURLToPath(new URL('../fixtures/turn/ipv6-sources.mjs', import.meta.url));

describeNetns('TURN: an IPv6 /64 is one source', () => {
  it('a second address in the same /64 gets 486 and shares the request bucket; another /64 does not', async () => {
    const ns = await lab().namespace('v6');
    const server = '2001:db8:0:9::1';
    const [a, b, c] = ['2001:db8:0:1::a', '2001:db8:0:1::b', '2001:db8:0:2::c'];
    for (const ip of [server, a, b, c]) await ns.ip('addr', 'add', `${ip}/128`, 'dev', 'lo');
    const { stdout } = await ns.exec(process.execPath, [fixture, server, a, b, c]);
    type Address = { address: string; port: number };
    const got = JSON.parse(stdout.trim()) as { allocations: (number | 'none')[]; bindings: number[]; first?: { mapped: Address; relayed: Address; client: Address } };
    // maxAllocationsPerAddress 1: a allocates, b (same /64) is over quota, c is another client
    expect(got.allocations).toEqual([200, 486, 200]);
    // burst 12 per /64 for requests without a nonce: a and b spent 2 on their first
    // (unsigned) Allocates (the signed ones spend the bucket of requests holding a nonce), a 8
    // more, b gets the last two (with a bucket of its own it would get 8); c has its own
    expect(got.bindings).toEqual([8, 2, 8]);
    // node-turn's Address padded 2001:db8:0:1::a to five groups: answers were lost and the
    // addresses in them garbled (turn/node-turn.ts ntAddress)
    expect(got.first).toBeDefined();
    expect(canonicalIp(got.first!.mapped.address)).toBe(a);
    expect(got.first!.mapped.port).toBe(got.first!.client.port);
    expect(canonicalIp(got.first!.relayed.address)).toBe(server);
  }, 30_000);
});
