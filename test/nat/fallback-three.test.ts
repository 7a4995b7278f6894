/**
 * NAT lab: the fallback is per remote peer, not per room. A room of three Node
 * (werift) peers where each pair ends on a different path:
 *
 *   site l (cone NAT): hosts a and b on one LAN; b's UDP to and from the WAN is dropped by
 *                      the router (blockUdp with `host`), its LAN traffic is not
 *   site s (symmetric NAT): host c
 *
 *   a <-> b  direct      (host candidates on the LAN)
 *   a <-> c  relay       (a cone and a symmetric NAT: no direct pair, both reach TURN)
 *   b <-> c  websocket   (b reaches neither c nor TURN over UDP)
 *
 * Every peer sends numbered reliable messages and 30 Hz game state to both others at once;
 * each pair must carry both on its own path, and every reliable stream must be complete.
 * Then b's UDP comes back: b <-> c moves to TURN, the other pairs stay where they are.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  blockUdp,
  debugView,
  describeSequence,
  drain,
  type FallbackPeer,
  FallbackSession,
  nextPath,
  type Path,
  peerView,
  pump,
  sequence,
  settleOn,
  type UdpBlock,
  waitMessages,
} from '../helpers/nat-fallback.js';
import { type Host, NatTopology, type Serve, type Site, startServeWithTurn, within } from '../helpers/nat-lab.js';
import { describeNetns, useNetLab } from '../helpers/netns.js';

const lab = useNetLab();

/**
 * Timing for this room. b's STUN and TURN servers do not answer, and werift sends a
 * description only once gathering is over: its STUN query gives up after 5 s, and
 * setLocalDescription resolved after 6.4 s in this lab. So b's offer to a (or answer) leaves
 * after about 6.4 s, and an attempt replaced before that never sends its description at all.
 * With the two-peer file's fast timing (attempts of 3 s, backoff up to 2 s) every attempt is
 * replaced before its description leaves: a and b, on one LAN, stayed on the WebSocket for
 * 40 s and more. 10 s to fall back and 12 s per attempt leave room for b's first attempt;
 * b <-> c falls back after 10 s.
 */
const THREE = {
  fallback: { afterMs: 10_000 },
  restart: { disconnectedGraceMs: 500, baseDelayMs: 250, maxDelayMs: 2_000, attemptTimeoutMs: 12_000 },
} as const;
/** b's description (6.4 s), the fallback (10 s), a loaded machine. */
const SETTLE_MS = 40_000;
/** From unblocking b to b <-> c on TURN: the current attempt (up to 12 s) and the next one, a loaded machine. */
const RETURN_MS = 45_000;

describeNetns('NAT lab: a room of three, one pair direct, one on TURN, one on the WebSocket', () => {
  let net: NatTopology;
  let siteL: Site;
  let hostA: Host;
  let hostB: Host;
  let hostC: Host;
  let serve: Serve;
  let block: UdpBlock | undefined;
  const session = new FallbackSession('fallback-three');

  beforeAll(async () => {
    net = await NatTopology.create(lab());
    siteL = await net.site('l', 'cone');
    const siteS = await net.site('s', 'symmetric');
    hostA = await net.host('a', siteL.lan);
    hostB = await net.host('b', siteL.lan);
    hostC = await net.host('c', siteS.lan);
    serve = await startServeWithTurn(net);
  }, 30_000);

  afterAll(async () => {
    await block?.remove();
    await session.cleanup();
  }, 30_000);

  it('each pair on its own path, all carrying game state and complete reliable streams', async () => {
    block = await blockUdp(siteL.router, { host: hostB.address });
    const room = 'three-paths';
    const a = await session.join(hostA.ns, { url: serve.wsUrl, room, ...THREE });
    const b = await session.join(hostB.ns, { url: serve.wsUrl, room, ...THREE });
    const c = await session.join(hostC.ns, { url: serve.wsUrl, room, ...THREE });
    const diagnosis = (what: string) => session.diagnosis(what);

    const pairs: [FallbackPeer, FallbackPeer, Path][] = [
      [a, b, 'direct'],
      [a, c, 'relay'],
      [b, c, 'websocket'],
    ];
    const started = Date.now();
    // Each pair on its path, now (one pair at a time: `settleOn` waits on both of its peers).
    for (const [x, y, path] of pairs) {
      await settleOn(x, y, (p) => p === path, SETTLE_MS - (Date.now() - started), diagnosis(`${x.proc.name} <-> ${y.proc.name} not on ${path} within ${SETTLE_MS} ms`));
    }
    console.log(`[fallback-three] paths settled ${Date.now() - started} ms after the three joined`);
    for (const [x, y, path] of pairs) {
      for (const [from, to] of [
        [x, y],
        [y, x],
      ] as const) {
        const view = await peerView(from, to);
        expect(view, `${from.proc.name} about ${to.proc.name}`).toMatchObject({ path, statsPath: path, connected: true });
      }
    }

    // Everyone sends to everyone: each ordered pair gets game state and reliable messages on its path.
    for (const [x, y] of pairs) await Promise.all([pump(x, y, 20), pump(y, x, 20)]);
    for (const [x, y, path] of pairs) {
      for (const [to, from] of [
        [x, y],
        [y, x],
      ] as const) {
        const game = await waitMessages(to, from, 'unreliable', 30, { path, timeoutMs: 10_000 });
        if (game.timeout) expect.fail(`${to.proc.name} from ${from.proc.name}: ${game.count}/30 unreliable on ${path} in 10 s\n${await debugView(from, to)}\n${await debugView(to, from)}`);
        const reliable = await waitMessages(to, from, 'reliable', 50, { path, timeoutMs: 15_000 });
        if (reliable.timeout) expect.fail(`${to.proc.name} from ${from.proc.name}: ${reliable.count}/50 reliable on ${path} in 15 s\n${await debugView(from, to)}\n${await debugView(to, from)}`);
      }
    }
    // Nothing moved while they played.
    for (const [x, y, path] of pairs) {
      expect((await peerView(x, y)).path).toBe(path);
      expect((await peerView(y, x)).path).toBe(path);
    }
    for (const [x, y] of pairs) {
      for (const [from, to] of [
        [x, y],
        [y, x],
      ] as const) {
        const r = await drain(from, to);
        expect(r.sendErrors).toEqual([]);
        expect(r.got, `${from.proc.name} -> ${to.proc.name}: ${describeSequence(r.got, r.sent)}`).toEqual(sequence(r.sent));
      }
    }
    expect(await block.dropped()).toBeGreaterThan(0);

    // b's UDP is back: only b <-> c moves (to TURN, like a <-> c: a cone and a symmetric NAT);
    // the other pairs stay where they are.
    const unblocked = Date.now();
    await block.remove();
    await within(
      Promise.all([nextPath(b, c, (p) => p !== 'websocket', unblocked), nextPath(c, b, (p) => p !== 'websocket', unblocked)]),
      RETURN_MS,
      diagnosis(`b <-> c still on the WebSocket ${RETURN_MS} ms after b's UDP came back`),
    );
    console.log(`[fallback-three] b <-> c off the WebSocket ${Date.now() - unblocked} ms after b's UDP came back`);
    for (const [x, y, path] of [...pairs.slice(0, 2), [b, c, 'relay']] as [FallbackPeer, FallbackPeer, Path][]) {
      expect((await peerView(x, y)).path, `${x.proc.name} about ${y.proc.name}`).toBe(path);
      expect((await peerView(y, x)).path, `${y.proc.name} about ${x.proc.name}`).toBe(path);
    }
    for (const [from, to] of [
      [b, c],
      [c, b],
    ] as const) {
      const got = to.proc.next<{ from: string; channel: string; data: string }>('message', (m) => m.from === from.id && m.channel === 'reliable');
      await from.proc.request({ cmd: 'send', to: to.id, channel: 'reliable', data: `hello from ${from.id}` }, 'sent');
      expect((await within(got, 15_000, diagnosis(`${to.proc.name} got nothing from ${from.proc.name} on the new path`))).data).toBe(`hello from ${from.id}`);
    }
  }, 150_000);
});
