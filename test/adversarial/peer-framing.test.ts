/**
 * A peer in the room cannot exhaust another's memory through the reliable framing. The
 * attackers are real members of the room (raw SignalingClients) that send hand-crafted
 * relay frames to the victim, a real Room (werift) that is also connected to an honest peer:
 * - a flood of early, empty fragments (before the count bound, 200,000 of them grew a heap
 *   by 58 MB whatever `maxQueuedBytes` said);
 * - fragments marked `more` that never end (before the cap, reassembly grew without limit);
 * - an empty fragment marked `more`, which no sender produces;
 * - 1-byte fragments marked `more` (before the 64-byte floor each held ~100x what it counted).
 * The victim's heap stays bounded, it reports `protocol-violation` and stops talking to the
 * attacker, and its honest peer is not affected.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerError } from '../../peer/errors.js';
import { createNodeSignalingClient, joinRoom, type Room } from '../../peer/node.js';
import type { RemotePeer } from '../../peer/remote-peer.js';
import type { SignalingClient } from '../../signaling/client/index.js';
import { type ListeningSignalingServer, listenSignaling } from '../../signaling/server/index.js';
import { collect, until, waitConnected } from '../peer/helpers.js';

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;

let server: ListeningSignalingServer | null = null;
const rooms: Room[] = [];
const clients: SignalingClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(rooms.splice(0).map((r) => r.leave()));
  await server?.close({ timeoutMs: 1_000 });
  server = null;
});

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Resolves with the next PeerError the room reports. */
function nextPeerError(room: Room): Promise<{ err: PeerError; peer: RemotePeer | undefined }> {
  return new Promise((resolve) =>
    room.on('error', (err, peer) => {
      if (err instanceof PeerError) resolve({ err, peer });
    }),
  );
}

/** A member of the room that speaks the relay protocol by hand. */
async function attacker(url: string, victim: Room): Promise<SignalingClient> {
  const c = createNodeSignalingClient({ url, room: 'arena', reconnect: false });
  clients.push(c);
  const seen = new Promise<void>((resolve) => victim.on('peer-joined', () => resolve()));
  await c.connect();
  await seen;
  return c;
}

/** Waits until the attacker's socket has written what it queued (it shares this process). */
async function drained(c: SignalingClient): Promise<void> {
  while (c.bufferedAmount > 256 * 1024) await new Promise((r) => setImmediate(r));
}

describe('peer framing bounds (a hostile peer in the room)', () => {
  it("a flood of bad fragments leaves the victim's heap bounded, ends in protocol-violation, and spares its honest peer", async () => {
    // Relay limits out of the way: the attack is on the victim, not on the server.
    server = await listenSignaling({
      port: 0,
      host: '127.0.0.1',
      logger: false,
      limits: {
        maxConnectionsPerIp: 0,
        relayMessagesPerSecond: 1e9,
        relayMessageBurst: 1e9,
        relayBytesPerSecond: 1e12,
        relayBytesBurst: 1e12,
        relayLatestAboveBytes: 1e9,
        relayMaxBufferedBytes: 1e9,
        maxBufferedBytes: 2e9,
      },
    });
    const url = server.wsUrl;
    const victim = await joinRoom({ url, room: 'arena' });
    rooms.push(victim);
    const honest = await joinRoom({ url, room: 'arena' });
    rooms.push(honest);
    await Promise.all([waitConnected(victim, 1), waitConnected(honest, 1)]);
    const errors: PeerError[] = [];
    victim.on('error', (e) => {
      if (e instanceof PeerError) errors.push(e);
    });
    const fromAttackers = collect(victim, 'unreliable');

    // 1. Early empty fragments: each one passes any byte bound.
    const flooder = await attacker(url, victim);
    const before = heapAfterGc();
    const FLOOD = 100_000;
    const kindOnly = new Uint8Array([0]); // a bytes fragment with no bytes
    for (let seq = 1; seq <= FLOOD; seq++) {
      flooder.relay(victim.id, 'reliable', { seq, data: kindOnly });
      if (seq % 2_000 === 0) await drained(flooder);
    }
    // Frames of one sender arrive in order: once this marker is delivered, the flood was taken in.
    flooder.relay(victim.id, 'unreliable', { data: 'flood done', unreliable: true });
    await until(victim, () => fromAttackers.includes('flood done'));
    const grown = heapAfterGc() - before;
    // Before the count bound: ~29 MB for 100,000 held fragments. Now at most 4,096 are held.
    expect(grown).toBeLessThan(12 * 1024 * 1024);
    expect(errors).toEqual([]);

    // 2. Then an empty fragment marked more: a framing violation.
    const violated = nextPeerError(victim);
    flooder.relay(victim.id, 'reliable', { seq: 0, more: true, data: kindOnly });
    const first = await violated;
    expect(first.err.code).toBe('protocol-violation');
    expect(first.err.message).toMatch(/fragment of 0 bytes marked more/);
    expect(first.peer?.id).toBe(flooder.id);
    expect(first.peer?.state).toBe('closed');

    // 3. A message that never ends: capped at 256 KiB (without a data channel; more if a
    // connection to that peer ever allowed more).
    const endless = await attacker(url, victim);
    const capped = nextPeerError(victim);
    const chunk = new Uint8Array(12_001); // kind byte + 12,000 bytes, a full relay fragment
    for (let seq = 0; seq < 200; seq++) endless.relay(victim.id, 'reliable', { seq, more: true, data: chunk });
    const second = await capped;
    expect(second.err.code).toBe('protocol-violation');
    expect(second.err.message).toMatch(/message over 262144 bytes/);
    expect(second.peer?.id).toBe(endless.id);

    // 4. A message of 1-byte fragments: each would count one byte against the cap and hold
    // ~100 in objects; the first one is a violation.
    const crumbs = await attacker(url, victim);
    const crumbled = nextPeerError(victim);
    const crumb = new Uint8Array([0, 1]); // kind byte + 1 byte
    for (let seq = 0; seq < 20_000; seq++) crumbs.relay(victim.id, 'reliable', { seq, more: true, data: crumb });
    const third = await crumbled;
    expect(third.err.code).toBe('protocol-violation');
    expect(third.err.message).toMatch(/fragment of 1 bytes marked more/);
    expect(third.peer?.id).toBe(crumbs.id);

    // The honest peer never noticed: still connected, and messages flow both ways.
    const atHonest = collect(honest, 'reliable');
    const atVictim = collect(victim, 'reliable');
    const victimSide = victim.peers.get(honest.id);
    const honestSide = honest.peers.get(victim.id);
    expect(victimSide?.connected).toBe(true);
    expect(honestSide?.connected).toBe(true);
    await victimSide?.send('reliable', 'to honest');
    await honestSide?.send('reliable', 'to victim');
    await Promise.all([until(honest, () => atHonest.includes('to honest')), until(victim, () => atVictim.includes('to victim'))]);
    expect(errors.map((e) => e.code)).toEqual(['protocol-violation', 'protocol-violation', 'protocol-violation']);
  });
});
