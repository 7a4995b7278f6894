/**
 * Quiet HTTP transports through an nginx with short idle timeouts (the times are
 * scaled down: proxy_read_timeout 2s against the server's sseKeepaliveMs 700 and pollHoldMs
 * 1200, as the defaults 15 s and 20 s stand against common 30-60 s proxy timeouts). The SSE
 * stream must be kept alive by its comments and each poll answered before nginx gives up
 * on it, so nothing is cut and nothing reconnects.
 */
import { afterEach, expect, it } from 'vitest';
import { describeNginx, startNginx, stopAllNginx } from '../helpers/nginx.js';
import { cleanup } from '../helpers/resources.js';
import { startServer } from '../helpers/server.js';
import { joinWatched, received } from '../helpers/watched-client.js';

afterEach(async () => {
  await cleanup();
  await stopAllNginx();
});

/** The quiet time: four times nginx's timeout. */
const IDLE_MS = 8000;
const SID = /[?&]sid=([A-Za-z0-9_-]+)/;

describeNginx('idle HTTP transports through nginx with short timeouts', () => {
  it('an SSE client and a poll client stay on one session for 8 s of silence, with no reconnect; a signal after it arrives', { timeout: 30_000 }, async () => {
    const srv = await startServer({ limits: { sseKeepaliveMs: 700, pollHoldMs: 1200 } });
    const nginx = await startNginx({ upstreams: [srv.port], tls: false, proxy: { stripUpgrade: true, timeout: '2s' } });
    const peer = await joinWatched(srv.wsUrl, 'lobby', { transports: ['websocket'] });
    // Clients that never ping within the test: the silence is the whole test.
    const quiet = { pingAfterMs: 60_000 };
    const sse = await joinWatched(nginx.wssUrl, 'lobby', quiet);
    const poll = await joinWatched(nginx.wssUrl, 'lobby', { ...quiet, transports: ['poll'] });
    expect([sse.client.transport, poll.client.transport]).toEqual(['sse', 'poll']);
    const before = (await nginx.accessLog()).length;

    // Nothing to wait for: the quiet time is what is tested.
    await new Promise((r) => setTimeout(r, IDLE_MS));

    // A stream or poll that nginx cuts is picked up again by the client without any event
    // (HttpSocket reattaches with its ack), so nginx's own logs are what show a cut: with
    // the default 15 s / 20 s against this 2 s timeout they list a timeout every 2 s (checked).
    const log = (await nginx.accessLog()).slice(before);
    // The SSE stream is still the first one: nginx logs a request when it ends, and none did.
    expect(log.filter((l) => l.includes('t=sse'))).toEqual([]);
    // Polls were held and answered (200, empty) before nginx's timeout, all on one session.
    const polls = log.filter((l) => l.includes('t=poll'));
    expect(polls.length).toBeGreaterThanOrEqual(Math.floor(IDLE_MS / 1200) - 1);
    expect(polls.every((l) => / 200 "GET /.test(l))).toBe(true);
    expect(new Set(polls.map((l) => SID.exec(l)?.[1])).size).toBe(1);
    expect(nginx.errorLog().filter((l) => /timed out/.test(l))).toEqual([]);
    for (const c of [sse, poll]) {
      expect(c.reconnects).toEqual([]);
      expect(c.welcomes).toEqual([{ id: c.id, resumed: false }]);
      expect(c.transports).toHaveLength(1);
      expect(c.errors).toEqual([]);
    }

    peer.client.signal(sse.id, 'after the quiet');
    peer.client.signal(poll.id, 'after the quiet');
    sse.client.signal(peer.id, 'sse after the quiet');
    poll.client.signal(peer.id, 'poll after the quiet');
    await Promise.all([received(sse, 1), received(poll, 1), received(peer, 2)]);
    expect(sse.inbox).toEqual([`signal ${peer.id} "after the quiet"`]);
    expect(poll.inbox).toEqual([`signal ${peer.id} "after the quiet"`]);
    expect(peer.inbox.sort()).toEqual([`signal ${poll.id} "poll after the quiet"`, `signal ${sse.id} "sse after the quiet"`].sort());
  });
});
