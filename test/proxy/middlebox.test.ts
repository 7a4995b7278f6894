/**
 * Signaling through a middlebox that answers the WebSocket upgrade and then forwards nothing (a
 * TLS-inspecting proxy gone silent), between a Node client and a server on port 0; a
 * WebSocket peer is connected to the server directly, in the same room.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../helpers/cluster.js';
import { startMiddlebox } from '../helpers/middlebox.js';
import { cleanup, defer } from '../helpers/resources.js';
import { startServer } from '../helpers/server.js';
import { exchangeSignals, joinWatched, received } from '../helpers/watched-client.js';

afterEach(cleanup);

async function setup(): Promise<{ box: Awaited<ReturnType<typeof startMiddlebox>>; peerUrl: string }> {
  const srv = await startServer();
  const box = await startMiddlebox(srv.port);
  defer(() => box.close());
  return { box, peerUrl: srv.wsUrl };
}

describe('a middlebox silent after the upgrade', () => {
  it('the client gives the WebSocket up after probeMs (default 2500) and is on sse within 4 s (3 s is the bench goal); signals flow both ways', async () => {
    const { box, peerUrl } = await setup();
    const peer = await joinWatched(peerUrl, 'lobby', { transports: ['websocket'] });
    const c = await joinWatched(box.wsUrl, 'lobby');
    expect(c.client.transport).toBe('sse');
    // The WebSocket opened (the 101 got through) and never delivered a frame: after the
    // default probeMs of 2500 the client moved on. Bound stated by the issue (4 s); measured
    // about 2.55 s here.
    expect(c.connectMs).toBeLessThan(4000);
    expect(c.connectMs).toBeGreaterThanOrEqual(2500);
    expect(box.silenced).toBe(1);
    expect(c.client.transportReason).toBe('websocket failed: silent');
    expect(c.reconnects).toEqual([]);

    const sent = await exchangeSignals(c, peer, 20);
    expect([c.inbox, peer.inbox]).toEqual([sent.toA, sent.toB]);
  });

  it('moves back up to websocket once the middlebox lets it through, resumed with the same id; signals around the move arrive once, in order', async () => {
    const { box, peerUrl } = await setup();
    const peer = await joinWatched(peerUrl, 'lobby', { transports: ['websocket'] });
    const c = await joinWatched(box.wsUrl, 'lobby', { upgradeRetryMs: 500, probeMs: 1000 });
    expect(c.client.transport).toBe('sse');
    // A background probe met the silent middlebox too, and the client stayed where it was.
    await until(() => box.silenced >= 2, 'a background WebSocket probe', 5000);
    expect(c.client.transport).toBe('sse');

    // A steady stream of signals to the client, from before the middlebox changes until
    // well after the client moved; and from it, whenever it is open (for the few ms of the
    // move it is 'connecting' and signal() would throw not-open).
    const sent: string[] = [];
    const sentUp: string[] = [];
    /** signal() must not throw while the state says open (it did while the old session closed). */
    const threwWhileOpen: string[] = [];
    let movedAt = -1;
    /** Signals the client had when it moved: those came over SSE, the rest over the WebSocket. */
    let overSse = -1;
    c.client.on('transport', () => (overSse = c.inbox.length));
    const timer = setInterval(() => {
      const i = sent.length;
      peer.client.signal(c.id, { i });
      sent.push(`signal ${peer.id} ${JSON.stringify({ i })}`);
      if (c.client.state === 'open') {
        try {
          c.client.signal(peer.id, { up: i });
          sentUp.push(`signal ${c.id} ${JSON.stringify({ up: i })}`);
        } catch (err) {
          threwWhileOpen.push(String(err));
        }
      }
      if (movedAt < 0 && c.client.transport === 'websocket') movedAt = i;
      if (movedAt >= 0 && i >= movedAt + 30) clearInterval(timer);
    }, 10);
    defer(() => clearInterval(timer));
    await until(() => sent.length >= 20, 'signals before the change', 5000);
    const states: string[] = [];
    c.client.on('state', (st) => states.push(st));
    box.mode = 'pass';
    await until(() => c.client.transport === 'websocket', 'the move up to websocket', 5000);
    await until(() => movedAt >= 0 && sent.length > movedAt + 30, 'signals after the move', 5000);
    await Promise.all([received(c, sent.length), received(peer, sentUp.length)]);

    expect(c.inbox).toEqual(sent);
    expect(peer.inbox).toEqual(sentUp);
    expect(threwWhileOpen).toEqual([]);
    // Not open for the few ms between the SSE session's close and the WebSocket's welcome.
    expect(states).toEqual(['connecting', 'open']);
    expect(sentUp.length).toBeGreaterThan(sent.length / 2);
    expect(overSse).toBeGreaterThanOrEqual(20);
    expect(overSse).toBeLessThan(sent.length);
    expect(c.transports).toEqual([
      { transport: 'sse', reason: 'websocket failed: silent' },
      { transport: 'websocket', reason: 'websocket works again' },
    ]);
    expect(c.client.transportReason).toBe('websocket works again');
    expect(c.welcomes).toEqual([
      { id: c.id, resumed: false },
      { id: c.id, resumed: true },
    ]);
    expect(c.client.id).toBe(c.id);
    expect(c.reconnects).toEqual([]);
    expect([...c.errors, ...peer.errors]).toEqual([]);
    // The peer never saw the client leave.
    expect(peer.left).toEqual([]);
  });
});
