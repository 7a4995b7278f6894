/**
 * NAT lab scenario 4: scenario 3 (both peers behind symmetric NATs) with Debian's
 * coturn as the relay instead of the embedded TURN. coturn runs with the turnserver.conf
 * `rallypoint coturn-config` prints; `rallypoint serve --turn-urls ... --turn-secret S` hands
 * out coturn's URLs with REST credentials minted from the same secret. The peers must relay
 * through coturn (its log shows an allocation for each peer id) and data must flow both ways.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type Coturn,
  connectNodePeers,
  describePair,
  exchange,
  expectedMessages,
  type Host,
  type NatTopology,
  type NodePair,
  pairStats,
  type Site,
  startCoturn,
  startServe,
  TURNSERVER,
  twoSites,
} from '../helpers/nat-lab.js';
import { describeNetns, isCI, useNetLab } from '../helpers/netns.js';

const lab = useNetLab();
const SECRET = 'nat-lab-coturn-secret-0123456789';
const COTURN_PORT = 3478; // the public namespace is the lab's own: no other server there
const missing = !existsSync(TURNSERVER);
if (missing && !isCI()) console.warn(`[nat] skipping the coturn scenario: ${TURNSERVER} not found (apt-get install coturn)`);

describeNetns('NAT lab: both peers behind symmetric NATs, coturn', () => {
  let net: NatTopology;
  let siteA: Site;
  let siteB: Site;
  let hostA: Host;
  let hostB: Host;
  let coturn: Coturn;
  let url: string;
  let pair: NodePair | undefined;

  // Namespaces, routers and servers: 2-5 s on a loaded 2-core machine.
  beforeAll(async () => {
    if (missing && !isCI()) return;
    ({ net, siteA, siteB, hostA, hostB } = await twoSites(lab(), ['symmetric', 'symmetric']));
    const at = `${net.publicAddress}:${COTURN_PORT}`;
    coturn = await startCoturn(net.pub, { address: net.publicAddress, port: COTURN_PORT, secret: SECRET, allow: [net.wan.subnet.cidr] });
    const serve = await startServe(net.pub, net.publicAddress, ['--turn-urls', `stun:${at},turn:${at}?transport=udp`, '--turn-secret', SECRET], { embeddedTurn: false });
    url = serve.wsUrl;
  }, 30_000);

  afterAll(async () => {
    if (pair) await Promise.all([pair.a.proc.request({ cmd: 'leave' }, 'left'), pair.b.proc.request({ cmd: 'leave' }, 'left')]);
  });

  it.skipIf(missing && !isCI())(
    'connects through coturn and carries messages both ways',
    async () => {
      expect(coturn.config).toMatch(new RegExp(`^allowed-peer-ip=${net.wan.subnet.cidr.replace('.0/24', '.0')}-`, 'm'));
      pair = await connectNodePeers(hostA.ns, hostB.ns, url, 'coturn');
      const { atA, atB } = await exchange(pair);
      expect(atB).toEqual(expectedMessages('a'));
      expect(atA).toEqual(expectedMessages('b'));

      const stats = await pairStats(pair);
      // The peers were handed coturn's URLs (the embedded TURN is off), credentials on the TURN one.
      const at = `${net.publicAddress}:${COTURN_PORT}`;
      for (const [side, id] of [
        ['a', pair.a.id],
        ['b', pair.b.id],
      ] as const) {
        expect(stats[side].iceServers).toEqual([
          { urls: [`stun:${at}`] },
          { urls: [`turn:${at}?transport=udp`], username: expect.stringMatching(new RegExp(`^\\d+:${id}$`)), credential: expect.any(String) },
        ]);
      }
      for (const [side, site] of [
        ['a', siteA],
        ['b', siteB],
      ] as const) {
        const s = stats[side];
        expect(s.path, `${side}: ${describePair(s.selectedPair)}`).toBe('relay');
        const relayed = [s.selectedPair?.local, s.selectedPair?.remote].filter((c) => c?.type === 'relay');
        expect(relayed.length, `${side}: ${describePair(s.selectedPair)}`).toBeGreaterThan(0);
        for (const c of relayed) expect(c?.address).toBe(net.publicAddress);
        // coturn answered STUN Binding with the site's (symmetric-mapped) public address.
        expect(s.localCandidates).toContainEqual(expect.objectContaining({ type: 'srflx', address: site.wan }));
      }
      // coturn, not an embedded server, allocated for both peers, with the REST usernames
      // (`<expiry>:<peer id>`) the signaling server minted from the shared secret.
      for (const id of [pair.a.id, pair.b.id]) {
        await coturn.proc.next<{ line: string }>('text', (m) => new RegExp(`user <\\d+:${id}>.*ALLOCATE processed, success`).test(String(m.line)));
      }
    },
    60_000,
  );
});
