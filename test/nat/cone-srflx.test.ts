/**
 * NAT lab scenario 2: two peers, each behind its own port-restricted cone NAT
 * (nftables `masquerade`: the same public port for every destination, only replies let in).
 * Their host addresses are unreachable from each other; the embedded TURN server answers
 * STUN Binding with each site's public address, and ICE connects directly through both NATs
 * (hole punching), without the relay.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  connectNodePeers,
  describePair,
  exchange,
  expectedMessages,
  type Host,
  type NatTopology,
  type NodePair,
  pairStats,
  type Serve,
  type Site,
  startServeWithTurn,
  stunBinding,
  twoSites,
} from '../helpers/nat-lab.js';
import { describeNetns, useNetLab } from '../helpers/netns.js';

const lab = useNetLab();

describeNetns('NAT lab: both peers behind port-restricted cone NATs', () => {
  let net: NatTopology;
  let siteA: Site;
  let siteB: Site;
  let hostA: Host;
  let hostB: Host;
  let serve: Serve;
  let pair: NodePair | undefined;

  // Namespaces, routers and servers: 2-5 s on a loaded 2-core machine.
  beforeAll(async () => {
    ({ net, siteA, siteB, hostA, hostB } = await twoSites(lab(), ['cone', 'cone']));
    serve = await startServeWithTurn(net);
  }, 30_000);

  afterAll(async () => {
    if (pair) await Promise.all([pair.a.proc.request({ cmd: 'leave' }, 'left'), pair.b.proc.request({ cmd: 'leave' }, 'left')]);
  });

  it('the embedded TURN server answers STUN Binding with the address of the NAT', async () => {
    const turn = serve.turn!;
    expect(await stunBinding(hostA.ns, turn.address, turn.port)).toMatchObject({ address: siteA.wan });
    expect(await stunBinding(hostB.ns, turn.address, turn.port)).toMatchObject({ address: siteB.wan });
  });

  it('connects directly via server-reflexive candidates and carries messages both ways', async () => {
    pair = await connectNodePeers(hostA.ns, hostB.ns, serve.wsUrl, 'cone');
    const { atA, atB } = await exchange(pair);
    expect(atB).toEqual(expectedMessages('a'));
    expect(atA).toEqual(expectedMessages('b'));

    const stats = await pairStats(pair);
    for (const [side, self, other] of [
      ['a', siteA, siteB],
      ['b', siteB, siteA],
    ] as const) {
      const s = stats[side];
      expect(s.path, `${side}: ${describePair(s.selectedPair)}`).toBe('direct');
      // The embedded TURN answered STUN Binding: a srflx candidate with the site's public address.
      expect(s.localCandidates).toContainEqual(expect.objectContaining({ type: 'srflx', address: self.wan }));
      // Packets come from the other site's NAT, not from its host address.
      expect(s.selectedPair?.remote.address, `${side}: ${describePair(s.selectedPair)}`).toBe(other.wan);
    }
    // Server-reflexive on at least one side of the selected pair (the other may learn it as
    // peer-reflexive from the first check that got through).
    const types = [stats.a, stats.b].flatMap((s) => [s.selectedPair?.local.type, s.selectedPair?.remote.type]);
    expect(types).toContain('srflx');
    expect(types).not.toContain('relay');
  }, 40_000);
});
