/**
 * A client that stops reading its socket while peers of its room send it signals within
 * their rate limits. Before every frame was bounded, only relay frames were: signals piled
 * up in the server's send buffer (16 senders grew the server by 140 MB in 5 s). Now what
 * waits for one client is bounded by maxBufferedBytes, whatever the frame type: past it the
 * client is closed with 1013 and its session kept for resume.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CLOSE_CODES, DEFAULT_LIMITS } from '../../signaling/protocol/index.js';
import { Connection } from '../../signaling/server/connection.js';
import type { RelayDelivery } from '../../signaling/server/index.js';
import { killCliChildren, nextLine, START_LINE, startCli } from '../helpers/cli.js';
import { httpGet } from '../helpers/http.js';
import { cleanup } from '../helpers/resources.js';
import { metricValue, startFakeClockServer, startServer, type TestServer } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
});

const SENDERS = 16;
/** Just under maxMessageBytes once wrapped in a signal frame. */
const PAYLOAD = 'x'.repeat(DEFAULT_LIMITS.maxMessageBytes - 200);

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Resolves on the next timer turn (pacing a sender below its rate limit; not a wait for an event). */
const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends `count` signals to `to` within the default signaling limits: the burst at once,
 * then at 80 % of messagesPerSecond. Resolves once the server has read them all.
 */
async function sendWithinLimits(sender: TestClient, to: string, count: number, burst = DEFAULT_LIMITS.messageBurst - 10): Promise<void> {
  const perTick = Math.floor(DEFAULT_LIMITS.messagesPerSecond * 0.8 * 0.1);
  let sent = 0;
  while (sent < count) {
    const n = sent === 0 ? Math.min(burst, count) : Math.min(perTick, count - sent);
    for (let i = 0; i < n; i++) sender.send({ type: 'signal', to, data: PAYLOAD });
    sent += n;
    if (sent < count) await tick(100);
  }
  await sender.sync();
}

async function startCliServer(): Promise<{ pid: number; url: string; wsUrl: string }> {
  // The reader here resumes reading after ~5 s of attack: give it longer than the default
  // slowReaderCloseMs to read its backlog (being terminated instead is tested below).
  const child = startCli(['serve', '--port', '0', '--host', '127.0.0.1', '--turn', 'off', '--log-level', 'error', '--slow-reader-close-ms', '60000', '--resume-grace-ms', '120000']);
  const [, url, wsUrl] = START_LINE.exec(await nextLine(child)) as RegExpExecArray;
  return { pid: child.pid as number, url: url as string, wsUrl: wsUrl as string };
}

/** SENDERS clients joined to `room`, one after another. */
async function joinSenders(wsUrl: string, room: string): Promise<TestClient[]> {
  const senders: TestClient[] = [];
  for (let i = 0; i < SENDERS; i++) {
    const c = await TestClient.connect(wsUrl);
    await c.join(room);
    senders.push(c);
  }
  return senders;
}

describe('adversarial: a client that stops reading', () => {
  it('costs the server at most maxBufferedBytes for signals too: RSS stays flat, the reader gets 1013 and resumes', { timeout: 60_000 }, async () => {
    const server = await startCliServer();
    const slow = await TestClient.connect(server.wsUrl);
    const welcome = await slow.join('room');
    const senders = await joinSenders(server.wsUrl, 'room');
    // Warm up: the same traffic to a reader that reads, so the heap has grown to what
    // receiving and parsing it costs before the baseline is taken.
    // (Sender to sender, with smaller bursts: they read, and none of them falls behind.)
    await Promise.all(senders.map((c, i) => sendWithinLimits(c, idOf(senders[(i + 1) % SENDERS]!), 300, 40)));
    await Promise.all(senders.map((c) => c.sync()));
    for (const c of senders) c.drain('signal');
    const before = rssBytes(server.pid);

    // The reader stops reading: its TCP window closes and the server holds what it sends.
    const socket = (slow.ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    // 16 senders, each inside its limits: ~5 s of traffic, ~64 MB of signals in all.
    await Promise.all(senders.map((c) => sendWithinLimits(c, welcome.id, 250, 40)));
    const grown = rssBytes(server.pid) - before;
    // The bound is 4 MiB (plus the kernel's socket buffers, which are not RSS); allow the
    // heap's own growth. Every frame buffered (the old behaviour) is over 60 MB.
    expect(grown).toBeLessThan(32 * 1024 * 1024);

    // Nobody else paid: every sender is still connected.
    for (const c of senders) expect(c.closeInfo).toBeNull();

    // The reader reads again: what was buffered, then the close frame with 1013.
    socket.resume();
    const closed = await slow.closed;
    expect(closed.code).toBe(CLOSE_CODES.tooSlow);
    expect(slow.pending('signal').length).toBeGreaterThan(0);

    // 1013 is not final: it comes back as the same peer within the grace period.
    const again = await TestClient.connect(server.wsUrl);
    const resumed = await again.join('room', { resume: welcome.resume.token });
    expect(resumed.resumed).toBe(true);
    expect(resumed.id).toBe(welcome.id);

    const metrics = (await httpGet(`${server.url}/metrics`)).body;
    expect(metricValue(metrics, 'rallypoint_slow_reader_closes_total')).toBe(1);
    expect(metricValue(metrics, 'rallypoint_closes_total', { code: '1013' })).toBe(1);
  });

  it('leaves everyone else alone: a pair in another room keeps signaling, and the senders are not closed', { timeout: 60_000 }, async () => {
    const server = await startCliServer();
    const slow = await TestClient.connect(server.wsUrl);
    const target = await slow.join('attacked');
    const senders = await joinSenders(server.wsUrl, 'attacked');
    const a = await TestClient.connect(server.wsUrl);
    const b = await TestClient.connect(server.wsUrl);
    const aWelcome = await a.join('quiet');
    const bWelcome = await b.join('quiet');

    (slow.ws as unknown as { _socket: Socket })._socket.pause();
    const attack = Promise.all(senders.map((c) => sendWithinLimits(c, target.id, 200)));
    // The quiet pair signals back and forth throughout the attack; every signal arrives.
    let rounds = 0;
    let attackDone = false;
    void attack.then(() => (attackDone = true));
    while (!attackDone || rounds < 5) {
      a.send({ type: 'signal', to: bWelcome.id, data: { n: rounds } });
      expect((await b.next('signal')).data).toEqual({ n: rounds });
      b.send({ type: 'signal', to: aWelcome.id, data: { n: rounds } });
      expect((await a.next('signal')).data).toEqual({ n: rounds });
      rounds++;
      // 20 rounds/s: the quiet pair stays within its own rate limit.
      await tick(50);
    }
    await attack;
    // Senders were never refused or struck: they can still signal each other.
    senders[0]!.send({ type: 'signal', to: idOf(senders[1]!), data: 'hi' });
    expect((await senders[1]!.next('signal')).data).toBe('hi');
    for (const c of senders) {
      expect(c.closeInfo).toBeNull();
      expect(c.pending('error')).toEqual([]);
    }
  });
});

/** A 256 KiB backlog bound (and what it must hold) and a rate that lets one sender fill it quickly. */
const SMALL_BUFFER = {
  maxBufferedBytes: 256 * 1024,
  relayMaxBufferedBytes: 64 * 1024,
  relayLatestAboveBytes: 16 * 1024,
  resumeQueueLength: 8,
  messageBurst: 5_000,
  messagesPerSecond: 5_000,
};

describe('slow reader: what it gets back when it resumes', () => {
  it('loses nothing in the middle: the old connection delivers a prefix, the resumed one continues it', { timeout: 30_000 }, async () => {
    const srv = await startServer({
      limits: {
        ...SMALL_BUFFER,
        // It reads its backlog once the sender is done, however long that takes on a busy machine.
        slowReaderCloseMs: 60_000,
        // slowReaderCloseMs must stay below the grace period (the reader must be able to resume).
        resumeGraceMs: 120_000,
      },
    });
    const reader = await srv.joined('r');
    const sender = await srv.joined('r');
    const socket = (reader.client.ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    // Enough to fill the kernel's loopback buffers and then the server's 256 KiB.
    const total = 2_000;
    for (let n = 0; n < total; n++) sender.client.send({ type: 'signal', to: reader.id, data: { n, pad: PAYLOAD.slice(0, 8_000) } });
    await sender.client.sync();
    socket.resume();
    expect((await reader.client.closed).code).toBe(CLOSE_CODES.tooSlow);
    const before = reader.client.drain('signal').map((m) => (m.data as { n: number }).n);

    const again = await srv.connect();
    const welcome = await again.join('r', { resume: reader.token });
    expect(welcome.resumed).toBe(true);
    await again.sync();
    const after = again.drain('signal').map((m) => (m.data as { n: number }).n);
    // In order, no duplicate, no gap: 0 .. k-1 across both connections; only the tail past
    // the resume queue (resumeQueueLength) is lost.
    const all = [...before, ...after];
    expect(all).toEqual(all.map((_, i) => i));
    expect(after.length).toBe(8);
    expect(all.length).toBeLessThan(total);
    expect(sender.client.closeInfo).toBeNull();
  });
});

/** The server's connections (private; read for these white-box checks only). */
const connectionsOf = (srv: TestServer): Set<Connection> => (srv.server as unknown as { connections: Set<Connection> }).connections;

describe('slow reader: cast off', () => {
  it('terminates a reader that has not read its backlog slowReaderCloseMs after the 1013, freeing it; the reader resumes', { timeout: 30_000 }, async () => {
    const srv = await startFakeClockServer({ limits: { ...SMALL_BUFFER, slowReaderCloseMs: 5_000 } });
    const reader = await srv.joined('r');
    const sender = await srv.joined('r');
    const conn = [...connectionsOf(srv)].find((c) => c.session?.id === reader.id)!;
    const socket = (reader.client.ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    for (let n = 0; n < 2_000; n++) sender.client.send({ type: 'signal', to: reader.id, data: { n, pad: PAYLOAD.slice(0, 8_000) } });
    await srv.logs.waitFor((l) => l.msg === 'slow reader closed');
    await sender.client.sync();
    // Cast off (1013 sent) but not closed: its backlog is still held.
    expect(srv.server.connectionCount).toBe(2);
    expect(metricValue(await srv.scrape(), 'rallypoint_send_buffered_bytes')).toBeGreaterThan(0);
    srv.clock.advance(4_999);
    expect(conn.closed).toBe(false);
    srv.clock.advance(1);
    await srv.logs.waitFor((l) => l.msg === 'connection closed' && l.code === CLOSE_CODES.tooSlow);
    expect(conn.closed).toBe(true);
    expect(conn.ws.bufferedAmount).toBe(0);
    expect((conn.ws as unknown as { _socket: Socket })._socket.destroyed).toBe(true);
    expect(srv.server.connectionCount).toBe(1);
    expect(metricValue(await srv.scrape(), 'rallypoint_send_buffered_bytes')).toBe(0);
    // It lost what was buffered, not its session.
    socket.resume();
    await reader.client.closed;
    const again = await srv.connect();
    const welcome = await again.join('r', { resume: reader.token });
    expect(welcome.resumed).toBe(true);
    expect(welcome.id).toBe(reader.id);
    expect(sender.client.closeInfo).toBeNull();
  });

  it('queues the overflowing frame for resume by the queue rules: an unreliable relay frame is not queued', async () => {
    const srv = await startServer();
    const overflow = (srv.server as unknown as { onOverflow: (c: Connection, f: string, r?: RelayDelivery) => void }).onOverflow;
    const queued = async (relay: RelayDelivery | undefined): Promise<string[]> => {
      const peer = await srv.joined('r');
      const conn = [...connectionsOf(srv)].find((c) => c.session?.id === peer.id)!;
      const session = conn.session!;
      overflow(conn, '{"type":"relay","from":"x","channel":"c","data":1}', relay);
      return [...session.queue];
    };
    expect(await queued({ kind: 'unreliable', latestKey: 'x/c' })).toEqual([]);
    expect(await queued({ kind: 'reliable' })).toHaveLength(1);
    expect(await queued(undefined)).toHaveLength(1);
  });

  it("hands the frame's relay delivery to the overflow handler", () => {
    const got: (RelayDelivery | undefined)[] = [];
    const ws = { readyState: 1, bufferedAmount: 100, send: () => undefined } as unknown as ConstructorParameters<typeof Connection>[0];
    // Limits that let an unreliable frame reach the overflow check (the server's option
    // checks keep relay frames below it; the handler must not rely on that).
    const limits = { ...DEFAULT_LIMITS, maxBufferedBytes: 110, relayLatestAboveBytes: 1_000, relayMaxBufferedBytes: 1_000 };
    const conn = new Connection(ws, {} as never, '127.0.0.1', {}, 0, limits, undefined, (_c, _f, relay) => void got.push(relay));
    conn.relay.deliver('x'.repeat(20), { kind: 'unreliable', latestKey: 'k' });
    conn.relay.deliver('x'.repeat(20), { kind: 'reliable' });
    conn.send('x'.repeat(20));
    expect(got).toEqual([{ kind: 'unreliable', latestKey: 'k' }, { kind: 'reliable' }, undefined]);
  });
});

/** The id a client was given in its welcome. */
function idOf(c: TestClient): string {
  const w = c.received.find((m) => m.type === 'welcome');
  if (w?.type !== 'welcome') throw new Error('no welcome');
  return w.id;
}

/** The server side of a client connected after `before` was taken. */
function newConnection(srv: TestServer, before: Set<Connection>): Connection {
  const conn = [...connectionsOf(srv)].find((c) => !before.has(c));
  if (!conn) throw new Error('no new connection');
  return conn;
}

/** Makes the server see `conn`'s backlog as full: the next frame written to it overflows. */
function fillBacklog(conn: Connection): void {
  Object.defineProperty(conn.ws, 'bufferedAmount', { get: () => DEFAULT_LIMITS.maxBufferedBytes });
}

describe('slow reader: the welcome itself overflows', () => {
  it('join: the connection is closed with 1013 and the room never hears of it (no ghost peer-joined)', async () => {
    const srv = await startServer();
    const observer = await srv.joined('r');
    const before = new Set(connectionsOf(srv));
    const joiner = await srv.connect();
    fillBacklog(newConnection(srv, before));
    joiner.send({ type: 'join', room: 'r' });
    expect((await joiner.closed).code).toBe(CLOSE_CODES.tooSlow);
    await observer.client.sync();
    expect(observer.client.pending('peer-joined')).toEqual([]);
    // The room holds the observer alone: a newcomer is told of it only.
    const next = await srv.joined('r');
    const welcome = next.client.received.find((m) => m.type === 'welcome');
    expect(welcome?.type === 'welcome' && welcome.peers.map((p) => p.id)).toEqual([observer.id]);
  });

  it('resume: the old token stays good and the queued frames are kept for the next resume', async () => {
    const srv = await startServer();
    const peer = await srv.joined('r');
    const sender = await srv.joined('r');
    await peer.client.terminate();
    await srv.logs.waitFor((l) => l.msg === 'connection closed' && l.id === peer.id);
    sender.client.send({ type: 'signal', to: peer.id, data: 'while away' });
    await sender.client.sync();
    const before = new Set(connectionsOf(srv));
    const first = await srv.connect();
    fillBacklog(newConnection(srv, before));
    first.send({ type: 'join', room: 'r', resume: peer.token });
    expect((await first.closed).code).toBe(CLOSE_CODES.tooSlow);
    const again = await srv.connect();
    const welcome = await again.join('r', { resume: peer.token });
    expect(welcome.resumed).toBe(true);
    expect(welcome.id).toBe(peer.id);
    const signal = await again.next('signal');
    expect(signal.data).toBe('while away');
  });
});

describe('cast off: other server-initiated closes', () => {
  it('terminates a replaced connection (4010) that has not finished closing within slowReaderCloseMs', { timeout: 30_000 }, async () => {
    const srv = await startFakeClockServer({ limits: { slowReaderCloseMs: 5_000 } });
    const peer = await srv.joined('r');
    const conn = [...connectionsOf(srv)].find((c) => c.session?.id === peer.id)!;
    // The old client stops reading: it never answers the close frame.
    (peer.client.ws as unknown as { _socket: Socket })._socket.pause();
    const again = await srv.connect();
    expect((await again.join('r', { resume: peer.token })).resumed).toBe(true);
    expect(conn.closed).toBe(false);
    srv.clock.advance(5_000);
    await srv.logs.waitFor((l) => l.msg === 'connection closed' && l.code === CLOSE_CODES.replaced);
    expect(conn.closed).toBe(true);
    expect((conn.ws as unknown as { _socket: Socket })._socket.destroyed).toBe(true);
  });
});
