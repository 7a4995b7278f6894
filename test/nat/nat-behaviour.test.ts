/**
 * The NAT lab's own check: its NAT routers behave as the scenarios claim.
 * One socket behind the `cone` router keeps one public port towards every destination (so
 * a STUN-learnt address works for any peer: scenario 2); behind the `symmetric` router it
 * gets a new port per destination (so it never does: scenarios 3 and 4 must relay).
 */
import { beforeAll, expect, it } from 'vitest';
import { type Host, LineProcess, NatTopology, type Site, stunMappings } from '../helpers/nat-lab.js';
import { describeNetns, useNetLab } from '../helpers/netns.js';

const lab = useNetLab();
const STUN_RESPONDER = new URL('../fixtures/werift/stun.mjs', import.meta.url).href;

describeNetns('NAT lab: the routers map as cone and symmetric NATs', () => {
  let cone: Site;
  let symmetric: Site;
  let behindCone: Host;
  let behindSymmetric: Host;
  let servers: string[];

  beforeAll(async () => {
    const net = await NatTopology.create(lab());
    [cone, symmetric] = [await net.site('c', 'cone'), await net.site('s', 'symmetric')];
    [behindCone, behindSymmetric] = [await net.host('c', cone.lan), await net.host('s', symmetric.lan)];
    // Two STUN servers on the public side (two ports: two destinations for the NATs).
    const script = `const { startStunResponder } = await import(${JSON.stringify(STUN_RESPONDER)});
const urls = [(await startStunResponder(process.argv[1])).url, (await startStunResponder(process.argv[1])).url];
console.log(JSON.stringify({ event: 'ready', urls }));
process.stdin.resume();`;
    const stun = new LineProcess('stun', net.pub.spawn(process.execPath, ['--input-type=module', '-e', script, net.publicAddress]));
    const { urls } = await stun.next<{ urls: string[] }>('ready');
    servers = urls.map((u) => u.replace(/^stun:/, ''));
  });

  it('cone: one socket has the same public address and port towards both servers', async () => {
    const [first, second] = await stunMappings(behindCone.ns, servers);
    expect(first).toEqual(second);
    expect(first!.address).toBe(cone.wan);
  });

  it('symmetric: one socket gets a different public port towards each server', async () => {
    const [first, second] = await stunMappings(behindSymmetric.ns, servers);
    expect(first!.address).toBe(symmetric.wan);
    expect(second!.address).toBe(symmetric.wan);
    // `masquerade random` draws each port at random from 1024-65535: equal by chance about
    // once in 64,000 runs.
    expect(first!.port).not.toBe(second!.port);
  });
});
