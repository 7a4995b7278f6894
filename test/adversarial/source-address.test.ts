/**
 * Who a connection counts as for maxConnectionsPerIp. X-Forwarded-For's leftmost entries are
 * written by the client: taking the leftmost let 80 connections from one client pass a
 * per-IP limit of 64. IPv6 clients have a /64 each: counting whole addresses let one client
 * open as many connections as it has addresses.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { UPGRADE_REFUSALS } from '../../signaling/protocol/index.js';
import { rawUpgrade } from '../helpers/http.js';
import { cleanup } from '../helpers/resources.js';
import { startServer } from '../helpers/server.js';

afterEach(cleanup);

const IP_FULL = UPGRADE_REFUSALS['ip-full'];

describe('adversarial: X-Forwarded-For written by the client', () => {
  it('does not let 80 connections with made-up leftmost entries pass a per-IP limit of 64 (trustProxy: true is one hop)', async () => {
    const srv = await startServer({ trustProxy: true, limits: { maxConnectionsPerIp: 64 } });
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 80; i++) {
      // The client wrote the first entry; our proxy appended the address it saw.
      const headers = { 'X-Forwarded-For': `198.51.100.${i}, 203.0.113.9` };
      try {
        await srv.connect({ headers });
        accepted++;
      } catch (err) {
        expect(String(err)).toContain(String(IP_FULL));
        refused++;
      }
    }
    expect(accepted).toBe(64);
    expect(refused).toBe(16);
  });

  it('walks a list of trusted proxies from the right and takes the first address that is not one', async () => {
    const srv = await startServer({ trustProxy: ['127.0.0.1', '10.0.0.0/8'], limits: { maxConnectionsPerIp: 1 } });
    await srv.connect({ headers: { 'X-Forwarded-For': '192.0.2.1, 203.0.113.20, 10.1.2.3' } });
    // Same client behind the same proxies, whatever it puts on the left: refused.
    expect((await rawUpgrade(srv.wsUrl, { 'X-Forwarded-For': '192.0.2.99, 203.0.113.20, 10.9.9.9' })).status).toBe(IP_FULL);
    // Another client address: accepted.
    expect((await rawUpgrade(srv.wsUrl, { 'X-Forwarded-For': '203.0.113.21, 10.1.2.3' })).status).toBe(101);
  });

  it('ignores the header from a peer that is not a trusted proxy', async () => {
    const srv = await startServer({ trustProxy: ['10.0.0.1'], limits: { maxConnectionsPerIp: 1 } });
    await srv.connect({ headers: { 'X-Forwarded-For': '203.0.113.1' } });
    // The socket peer (127.0.0.1) is not 10.0.0.1: both count as 127.0.0.1.
    expect((await rawUpgrade(srv.wsUrl, { 'X-Forwarded-For': '203.0.113.2' })).status).toBe(IP_FULL);
  });

  it('with a hop count of 2, takes the second entry from the right', async () => {
    const srv = await startServer({ trustProxy: 2, limits: { maxConnectionsPerIp: 1 } });
    await srv.connect({ headers: { 'X-Forwarded-For': '192.0.2.1, 203.0.113.30, 10.0.0.2' } });
    expect((await rawUpgrade(srv.wsUrl, { 'X-Forwarded-For': '192.0.2.2, 203.0.113.30, 10.0.0.3' })).status).toBe(IP_FULL);
    expect((await rawUpgrade(srv.wsUrl, { 'X-Forwarded-For': '192.0.2.1, 203.0.113.31, 10.0.0.2' })).status).toBe(101);
  });
});

describe('adversarial: one IPv6 client, many addresses', () => {
  it('counts a /64 as one source for maxConnectionsPerIp', async () => {
    const srv = await startServer({ trustProxy: 1, limits: { maxConnectionsPerIp: 2 } });
    await srv.connect({ headers: { 'X-Forwarded-For': '2001:db8:1:2::1' } });
    await srv.connect({ headers: { 'X-Forwarded-For': '2001:db8:1:2:aaaa:bbbb:cccc:dddd' } });
    expect((await rawUpgrade(srv.wsUrl, { 'X-Forwarded-For': '2001:db8:1:2::ffff' })).status).toBe(IP_FULL);
    // The next /64 is another subscriber.
    expect((await rawUpgrade(srv.wsUrl, { 'X-Forwarded-For': '2001:db8:1:3::1' })).status).toBe(101);
  });

  it('counts IPv4-mapped IPv6 as the IPv4 address', async () => {
    const srv = await startServer({ trustProxy: 1, limits: { maxConnectionsPerIp: 1 } });
    await srv.connect({ headers: { 'X-Forwarded-For': '203.0.113.5' } });
    expect((await rawUpgrade(srv.wsUrl, { 'X-Forwarded-For': '::ffff:203.0.113.5' })).status).toBe(IP_FULL);
  });

  it('takes the prefix length from limits.ipv6PrefixLength (128: whole addresses)', async () => {
    const srv = await startServer({ trustProxy: 1, limits: { maxConnectionsPerIp: 1, ipv6PrefixLength: 128 } });
    await srv.connect({ headers: { 'X-Forwarded-For': '2001:db8::1' } });
    expect((await rawUpgrade(srv.wsUrl, { 'X-Forwarded-For': '2001:db8::2' })).status).toBe(101);
    expect((await rawUpgrade(srv.wsUrl, { 'X-Forwarded-For': '[2001:db8::1]:4711' })).status).toBe(IP_FULL);
  });
});
