/**
 * NAT lab: the WebSocket fallback with real UDP blocking. Two Node (werift) peers,
 * each behind its own port-restricted cone NAT (scenario 2 shows they connect directly there);
 * signaling and the embedded TURN server in the public namespace. Each site's router drops
 * every UDP packet it would forward (blockUdp): no direct path, no TURN, only the TCP
 * WebSocket to signaling. Both peers must move to `websocket`, game state and numbered
 * reliable messages must keep flowing, and once UDP is back both must return to `direct` or
 * `relay` with the reliable stream complete, in order and without duplicates across both
 * switches.
 *
 * Traffic, both ways at once for the whole test: a reliable `r<n>` every 10 ms (each send
 * awaited, as a game would) and an unreliable `u<n>` at 30 Hz.
 */
import { afterEach, beforeAll, expect, it } from 'vitest';
import { BURSTS, FAST_FALLBACK, type FallbackPeer, FallbackSession, type Path, peerView, pump, received, relayedMessages, settleOn } from '../helpers/nat-fallback.js';
import { type Serve, startServeWithTurn, type TwoSites, twoSites } from '../helpers/nat-lab.js';
import { describeNetns, useNetLab } from '../helpers/netns.js';

const lab = useNetLab();

/** From joining (blocked) to `websocket`: fallback.afterMs (1.5 s) plus a loaded machine. */
const FALLBACK_MS = 15_000;
/**
 * From unblocking UDP to `direct`/`relay`: the next background attempt (backoff at most 2 s,
 * after an attempt of at most 3 s) plus ICE (1-2.5 s here), plus a loaded machine.
 */
const RETURN_MS = 30_000;
/** The longest a receiver may go without game state when the path changes under it by itself. */
const MAX_GAME_GAP_MS = 3_000;
/**
 * From blocking UDP mid-session to `websocket`. werift says nothing of a working path gone
 * silent until ICE consent expires 30 s later (RFC 7675), so the library keeps its own
 * liveness on the data channel path (peer/liveness.ts): a path silent for
 * fallback.afterMs (1.5 s here) counts as failed. Measured about 1.6 s; 10 s allows for a
 * loaded machine and stays far below the 25.6-29.6 s the consent timeout took before.
 */
const MID_SESSION_FALLBACK_MS = 10_000;

describeNetns('NAT lab: WebSocket fallback when the sites block UDP', () => {
  let scene: TwoSites;
  let serve: Serve;
  const session = new FallbackSession('fallback', () => [serve.proc]);

  beforeAll(async () => {
    scene = await twoSites(lab(), ['cone', 'cone']);
    serve = await startServeWithTurn(scene.net);
  }, 30_000);

  // Each test leaves the routers unblocked and its peers gone, whatever happened.
  afterEach(() => session.cleanup(), 30_000);

  const block = () => session.block(scene.siteA.router, scene.siteB.router);

  async function join(room: string): Promise<[FallbackPeer, FallbackPeer]> {
    const a = await session.join(scene.hostA.ns, { url: serve.wsUrl, room, ...FAST_FALLBACK });
    const b = await session.join(scene.hostB.ns, { url: serve.wsUrl, room, ...FAST_FALLBACK });
    return [a, b];
  }

  /** Both sides say `path`, from `peer.path` and from `stats().path`. */
  async function expectPath(a: FallbackPeer, b: FallbackPeer, want: (p: Path | null) => boolean, label: string): Promise<void> {
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      const view = await peerView(x, y);
      expect(want(view.path), `${x.proc.name}: peer.path ${view.path}, expected ${label}`).toBe(true);
      expect(want(view.statsPath), `${x.proc.name}: stats().path ${view.statsPath}, expected ${label}`).toBe(true);
      expect(view.connected).toBe(true);
    }
  }

  it('blocked from the start: both fall back to the WebSocket and keep playing; UDP back: direct or relay again, nothing lost or duplicated', async () => {
    const [blockA, blockB] = await block();
    const before = await relayedMessages(scene.net.pub, serve.httpUrl);
    const joined = Date.now();
    const [a, b] = await join('fb-blocked');
    const [atA, atB] = await session.bothOn(a, b, (p) => p === 'websocket', joined, FALLBACK_MS, `no websocket path ${FALLBACK_MS} ms after joining`);
    console.log(`[fallback] blocked start: websocket after ${atA.at - joined} / ${atB.at - joined} ms`);
    await expectPath(a, b, (p) => p === 'websocket', 'websocket');

    await Promise.all([pump(a, b), pump(b, a)]);
    await session.expectFlowing(a, b, 'websocket', 'blocked start');
    // It really went over the server, and ICE really tried UDP: B's router dropped it. (B
    // joined second, so B is the initiator and gathers at once. A builds its connection when
    // B's offer arrives, and werift sends an offer only once gathering is done, which waits 5 s
    // for a STUN server that does not answer: A may send no UDP at all while blocked.)
    const during = await relayedMessages(scene.net.pub, serve.httpUrl);
    expect(during.reliable - before.reliable).toBeGreaterThanOrEqual(2 * BURSTS.reliable);
    expect(during.unreliable - before.unreliable).toBeGreaterThanOrEqual(2 * BURSTS.game);
    console.log(`[fallback] blocked start: UDP packets dropped by router a ${await blockA!.dropped()}, router b ${await blockB!.dropped()}`);
    expect(await blockB!.dropped()).toBeGreaterThan(0);

    // UDP is back: a background attempt connects and both move off the WebSocket.
    const unblocked = Date.now();
    await session.unblock();
    const [backA, backB] = await session.bothOn(a, b, (p) => p !== 'websocket', unblocked, RETURN_MS, `still on the WebSocket ${RETURN_MS} ms after UDP came back`);
    console.log(`[fallback] blocked start: ${backA.path}/${backB.path} after ${backA.at - unblocked} / ${backB.at - unblocked} ms`);
    await expectPath(a, b, (p) => p === 'direct' || p === 'relay', 'direct or relay');
    const back = (await peerView(a, b)).path as Path;
    await session.expectFlowing(a, b, back, 'blocked start');

    const { ab, ba } = await session.expectComplete(a, b);
    console.log(`[fallback] blocked start: ${ab} + ${ba} reliable messages, complete`);
    // Messages arrived on both paths (as the receiver saw its path).
    for (const [to, from] of [
      [a, b],
      [b, a],
    ] as const) {
      const r = await received(to, from);
      expect(r.reliableByPath.websocket, to.proc.name).toBeGreaterThan(0);
      expect((r.reliableByPath.direct ?? 0) + (r.reliableByPath.relay ?? 0), to.proc.name).toBeGreaterThan(0);
      expect(r.errors, to.proc.name).toEqual([]);
      console.log(`[fallback] blocked start: ${to.proc.name} longest time without game state ${r.maxUnreliableGapMs} ms; reliable by path ${JSON.stringify(r.reliableByPath)}`);
      // The way back is seamless for the game: the WebSocket carries the state until the
      // data channels are open (measured: under 100 ms between two messages at 30 Hz).
      expect(r.maxUnreliableGapMs, to.proc.name).toBeLessThan(MAX_GAME_GAP_MS);
    }
  }, 120_000);

  it('blocked mid-session: direct -> websocket -> direct or relay while sending, nothing lost or duplicated', async () => {
    const [a, b] = await join('fb-mid');
    // Direct on both sides, now. (On a loaded machine ICE can take longer than
    // fallback.afterMs: the pair may first fall back, then return.)
    await settleOn(a, b, (p) => p === 'direct', 30_000, session.diagnosis('not direct within 30 s (scenario 2 connects these sites directly)'));
    await Promise.all([pump(a, b), pump(b, a)]);
    await session.expectFlowing(a, b, 'direct', 'mid-session');

    const blocked = Date.now();
    await block();
    const [atA, atB] = await session.bothOn(a, b, (p) => p === 'websocket', blocked, MID_SESSION_FALLBACK_MS, `not on the WebSocket ${MID_SESSION_FALLBACK_MS} ms after UDP was blocked`);
    console.log(`[fallback] mid-session: websocket after ${atA.at - blocked} / ${atB.at - blocked} ms`);
    await expectPath(a, b, (p) => p === 'websocket', 'websocket');
    await session.expectFlowing(a, b, 'websocket', 'mid-session');

    const unblocked = Date.now();
    await session.unblock();
    const [backA, backB] = await session.bothOn(a, b, (p) => p !== 'websocket', unblocked, RETURN_MS, `still on the WebSocket ${RETURN_MS} ms after UDP came back`);
    console.log(`[fallback] mid-session: ${backA.path}/${backB.path} after ${backA.at - unblocked} / ${backB.at - unblocked} ms`);
    await expectPath(a, b, (p) => p === 'direct' || p === 'relay', 'direct or relay');
    await session.expectFlowing(a, b, (await peerView(a, b)).path as Path, 'mid-session');

    const { ab, ba } = await session.expectComplete(a, b);
    console.log(`[fallback] mid-session: ${ab} + ${ba} reliable messages, complete`);
    for (const [to, from] of [
      [a, b],
      [b, a],
    ] as const) {
      const r = await received(to, from);
      console.log(
        `[fallback] mid-session: ${to.proc.name} longest time without game state ${r.maxUnreliableGapMs} ms; reliable by path ${JSON.stringify(r.reliableByPath)}; errors ${JSON.stringify(r.errors)}`,
      );
    }
  }, 150_000);
});
