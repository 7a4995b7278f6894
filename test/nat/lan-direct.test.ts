/**
 * NAT lab scenario 1: two peers on one LAN behind a NAT router, the signaling
 * server and its embedded TURN outside. ICE must pick the host candidates (the LAN path),
 * not a server-reflexive or relayed one, and data must flow both ways.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectNodePeers, describePair, exchange, expectedMessages, type Host, NatTopology, type NodePair, pairStats, startServeWithTurn } from '../helpers/nat-lab.js';
import { describeNetns, useNetLab } from '../helpers/netns.js';

const lab = useNetLab();

describeNetns('NAT lab: two peers on one LAN', () => {
  let net: NatTopology;
  let hostA: Host;
  let hostB: Host;
  let url: string;
  let pair: NodePair | undefined;

  // Namespaces, routers and servers: 2-5 s on a loaded 2-core machine.
  beforeAll(async () => {
    net = await NatTopology.create(lab());
    const site = await net.site('home', 'cone');
    [hostA, hostB] = [await net.host('a', site.lan), await net.host('b', site.lan)];
    const serve = await startServeWithTurn(net);
    url = serve.wsUrl;
  }, 30_000);

  afterAll(async () => {
    // A polite leave: the room's close is part of what works.
    if (pair) await Promise.all([pair.a.proc.request({ cmd: 'leave' }, 'left'), pair.b.proc.request({ cmd: 'leave' }, 'left')]);
  });

  it('connects directly over host candidates and carries messages both ways', async () => {
    pair = await connectNodePeers(hostA.ns, hostB.ns, url, 'lan');
    const { atA, atB } = await exchange(pair);
    expect(atB).toEqual(expectedMessages('a'));
    expect(atA).toEqual(expectedMessages('b'));

    const stats = await pairStats(pair);
    for (const [side, self, other] of [
      ['a', hostA, hostB],
      ['b', hostB, hostA],
    ] as const) {
      const s = stats[side];
      expect(s.path, `${side}: ${describePair(s.selectedPair)}`).toBe('direct');
      expect(s.selectedPair?.local).toMatchObject({ type: 'host', address: self.address });
      // The other host's LAN address: its host candidate, or the same address learnt as
      // peer-reflexive when its first check arrived before its candidates (signaling is slower
      // than the LAN).
      expect(s.selectedPair?.remote.address).toBe(other.address);
      expect(['host', 'prflx']).toContain(s.selectedPair?.remote.type);
      // STUN worked too (the embedded TURN answered from outside the NAT), so host won on
      // merit, not for want of other candidates.
      expect(s.localCandidates.map((c) => c.type)).toContain('srflx');
    }
  }, 40_000);
});
