/**
 * NAT lab scenario 3: two peers, each behind a symmetric NAT (nftables
 * `masquerade random`: a new public port for every destination). The port a STUN server
 * sees is not the port the other peer would see, so no direct pair can work: ICE must
 * connect through the embedded TURN server, and data must flow both ways through it.
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
  twoSites,
} from '../helpers/nat-lab.js';
import { describeNetns, useNetLab } from '../helpers/netns.js';

const lab = useNetLab();

describeNetns('NAT lab: both peers behind symmetric NATs, embedded TURN', () => {
  let net: NatTopology;
  let siteA: Site;
  let siteB: Site;
  let hostA: Host;
  let hostB: Host;
  let serve: Serve;
  let pair: NodePair | undefined;

  // Namespaces, routers and servers: 2-5 s on a loaded 2-core machine.
  beforeAll(async () => {
    ({ net, siteA, siteB, hostA, hostB } = await twoSites(lab(), ['symmetric', 'symmetric']));
    serve = await startServeWithTurn(net);
  }, 30_000);

  afterAll(async () => {
    if (pair) await Promise.all([pair.a.proc.request({ cmd: 'leave' }, 'left'), pair.b.proc.request({ cmd: 'leave' }, 'left')]);
  });

  it('connects through the embedded TURN relay and carries messages both ways', async () => {
    expect(serve.turn).toMatchObject({ address: net.publicAddress, relay: net.publicAddress });
    pair = await connectNodePeers(hostA.ns, hostB.ns, serve.wsUrl, 'symmetric');
    const { atA, atB } = await exchange(pair);
    expect(atB).toEqual(expectedMessages('a'));
    expect(atA).toEqual(expectedMessages('b'));

    const stats = await pairStats(pair);
    // No iceServers option anywhere: each peer used the welcome's, which name the host the
    // peer reached the signaling server by, with a REST username minted for its own id.
    const { address, port } = serve.turn!;
    for (const [side, id] of [
      ['a', pair.a.id],
      ['b', pair.b.id],
    ] as const) {
      expect(stats[side].iceServers).toEqual([
        { urls: `stun:${address}:${port}` },
        { urls: `turn:${address}:${port}?transport=udp`, username: expect.stringMatching(new RegExp(`^\\d+:${id}$`)), credential: expect.any(String) },
      ]);
    }
    for (const [side, site] of [
      ['a', siteA],
      ['b', siteB],
    ] as const) {
      const s = stats[side];
      const pair = s.selectedPair;
      expect(s.path, `${side}: ${describePair(pair)}`).toBe('relay');
      // One end of the pair is a relayed address on the embedded TURN server.
      const relayed = [pair?.local, pair?.remote].filter((c) => c?.type === 'relay');
      expect(relayed.length, `${side}: ${describePair(pair)}`).toBeGreaterThan(0);
      for (const c of relayed) expect(c?.address).toBe(serve.turn?.relay);
      // The symmetric NAT did hand out a reflexive address (so a direct pair was tried and
      // could not work), and an allocation on the TURN server.
      expect(s.localCandidates).toContainEqual(expect.objectContaining({ type: 'srflx', address: site.wan }));
      expect(s.localCandidates).toContainEqual(expect.objectContaining({ type: 'relay', address: serve.turn?.relay }));
    }
  }, 60_000);
});
