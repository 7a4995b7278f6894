/**
 * The data channel liveness machine (peer/remote-peer.ts #checkLiveness, peer/channel.ts
 * ping) on a fake clock (vitest's fake timers, Date included) and a fake RTCPeerConnection
 * whose data channels deliver to each other after 1 ms, unless the test cuts the link. Two
 * RemotePeers negotiate through each other's handleSignal, as the signaling service would
 * carry it. Minutes of fake time run in milliseconds; the real two-peer and NAT-lab
 * versions are test/peer/liveness.test.ts and test/nat/liveness.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_FLOW } from '../../peer/channel.js';
import { resolveChannels, type ChannelOptions } from '../../peer/channels.js';
import { decodeFrame } from '../../peer/reliable.js';
import type { RelayLink } from '../../peer/relay-link.js';
import { DEFAULT_RESTART, RemotePeer } from '../../peer/remote-peer.js';

/** What crossed the fake link, per direction (from the sender's side). */
interface Wire {
  /** Every message written, by channel label. */
  frames: { label: string; data: string | Uint8Array }[];
}

class FakeDc {
  readyState: RTCDataChannelState = 'connecting';
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  binaryType = 'arraybuffer';
  onopen: (() => void) | null = null;
  onclose: (() => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onbufferedamountlow: (() => void) | null = null;
  remote: FakeDc | null = null;
  constructor(
    readonly label: string,
    private readonly net: FakeNet,
    private readonly wire: Wire,
  ) {}
  send(data: string | Uint8Array): void {
    if (this.readyState !== 'open') throw new Error('InvalidStateError: not open');
    const copy = typeof data === 'string' ? data : data.slice();
    this.wire.frames.push({ label: this.label, data: copy });
    if (this.net.cut) return; // the path died silently: no error, nothing arrives
    const remote = this.remote;
    setTimeout(() => remote?.onmessage?.({ data: copy }), 1);
  }
  close(): void {
    this.readyState = 'closed';
  }
}

/** Two fake connections: the initiator's (index 0) and the answerer's (index 1). */
class FakeNet {
  cut = false;
  readonly pcs: FakePc[] = [];
  readonly wires: [Wire, Wire] = [{ frames: [] }, { frames: [] }];

  /** Once the answer is applied: a matching channel at the answerer per initiator channel, then both open. */
  link(): void {
    const [a, b] = this.pcs as [FakePc, FakePc];
    for (const dc of a.channels) {
      const other = new FakeDc(dc.label, this, this.wires[1]);
      dc.remote = other;
      other.remote = dc;
      b.ondatachannel?.({ channel: other });
      for (const end of [dc, other]) {
        end.readyState = 'open';
        end.onopen?.();
      }
    }
  }
}

class FakePc {
  signalingState: RTCSignalingState = 'stable';
  localDescription: RTCSessionDescriptionInit | null = null;
  remoteDescription: RTCSessionDescriptionInit | null = null;
  connectionState = 'new';
  iceConnectionState = 'new';
  onicecandidate: unknown = null;
  ondatachannel: ((ev: { channel: FakeDc }) => void) | null = null;
  onconnectionstatechange: unknown = null;
  oniceconnectionstatechange: unknown = null;
  readonly channels: FakeDc[] = [];
  constructor(private readonly net: FakeNet) {
    net.pcs.push(this);
  }
  async createOffer(): Promise<RTCSessionDescriptionInit> {
    return { type: 'offer', sdp: 'fake' };
  }
  async createAnswer(): Promise<RTCSessionDescriptionInit> {
    return { type: 'answer', sdp: 'fake' };
  }
  async setLocalDescription(d: RTCSessionDescriptionInit): Promise<void> {
    this.localDescription = d;
    this.signalingState = d.type === 'offer' ? 'have-local-offer' : 'stable';
  }
  async setRemoteDescription(d: RTCSessionDescriptionInit): Promise<void> {
    this.remoteDescription = d;
    this.signalingState = d.type === 'offer' ? 'have-remote-offer' : 'stable';
    if (d.type === 'answer') this.net.link();
  }
  async addIceCandidate(): Promise<void> {}
  createDataChannel(label: string): FakeDc {
    const dc = new FakeDc(label, this.net, this.net.wires[0]);
    this.channels.push(dc);
    return dc;
  }
  async getStats(): Promise<Map<string, unknown>> {
    return new Map();
  }
  close(): void {}
}

/** A relay that accepts everything (the fallback needs one to move to). */
const relay: RelayLink = { enabled: true, fragmentBytes: 12_000, trySend: () => true, sendLatest: () => undefined, onDrain: () => () => undefined };

interface Seen {
  paths: string[];
  disconnected: number;
  errors: string[];
}

/** Two connected fakes; `quietB`: B has no liveness of its own (`fallback: false`), as a peer that never sends unless asked. */
function pair(afterMs: number, channels?: Record<string, ChannelOptions>, quietB = false): { net: FakeNet; a: RemotePeer; b: RemotePeer; seen: [Seen, Seen] } {
  const net = new FakeNet();
  const resolved = resolveChannels(channels);
  const peers: RemotePeer[] = [];
  const make = (i: 0 | 1): RemotePeer =>
    new RemotePeer({
      id: i === 0 ? 'b' : 'a',
      localId: i === 0 ? 'a' : 'b',
      meta: undefined,
      initiator: i === 0,
      channels: resolved,
      createConnection: () => new FakePc(net) as unknown as RTCPeerConnection,
      caps: { iceRestart: false },
      flow: DEFAULT_FLOW,
      restart: DEFAULT_RESTART,
      relay,
      fallback: quietB && i === 1 ? false : { afterMs },
      // The signaling service: to the other peer, a little later.
      send: (payload) => void setTimeout(() => void peers[1 - i]?.handleSignal(payload), 5),
    });
  // The answerer exists first (it is in the room when the initiator joins).
  peers[1] = make(1);
  peers[0] = make(0);
  const seen: [Seen, Seen] = [
    { paths: [], disconnected: 0, errors: [] },
    { paths: [], disconnected: 0, errors: [] },
  ];
  peers.forEach((p, i) => {
    p.on('path-change', (path) => seen[i]!.paths.push(path));
    p.on('disconnected', () => seen[i]!.disconnected++);
    p.on('error', (err) => seen[i]!.errors.push(err.code));
  });
  return { net, a: peers[0]!, b: peers[1]!, seen };
}

/** Frames of `wire` that are liveness probes (empty, flagless fragments), acknowledgements (keepalives and answers) or anything else. */
function kinds(wire: Wire): { probes: number; acks: number; data: number } {
  let probes = 0;
  let acks = 0;
  let data = 0;
  for (const f of wire.frames) {
    const d = typeof f.data === 'string' || f.label !== 'reliable' ? null : decodeFrame(f.data);
    if (d && 'ack' in d) acks++;
    else if (d && d.fragment.bytes.byteLength === 0 && !d.fragment.more) probes++;
    else data++;
  }
  return { probes, acks, data };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('liveness on a fake clock', () => {
  it('a side that only streams on an unreliable channel hears the listener: no fallback in 60 s, and the streaming side sends nothing but its stream', async () => {
    const { net, a, b, seen } = await connected(5_000);
    const got: unknown[] = [];
    b.on('message', (_ch, data) => got.push(data));
    const stream = setInterval(() => void a.send('unreliable', 'state'), 1000 / 30);
    await vi.advanceTimersByTimeAsync(60_000);
    clearInterval(stream);
    expect(seen).toEqual([
      { paths: [], disconnected: 0, errors: [] },
      { paths: [], disconnected: 0, errors: [] },
    ]);
    expect(a.generation).toBe(0);
    expect(a.connected && b.connected).toBe(true);
    expect(got.length).toBeGreaterThan(1_750);
    // B, which writes nothing, sends a keepalive at each check (a quarter of afterMs); A,
    // which hears B all the time, never probes, and keepalives are not answered: A writes
    // nothing but its stream (no reliable message in its SCTP send window).
    const ab = kinds(net.wires[0]);
    const ba = kinds(net.wires[1]);
    expect(ab).toEqual({ probes: 0, acks: 0, data: got.length });
    expect(ba.probes).toBe(0);
    expect(ba.data).toBe(0);
    expect(ba.acks).toBeGreaterThanOrEqual(46);
    expect(ba.acks).toBeLessThanOrEqual(49);
    await closeAll(a, b);
  });

  it('a listener that never sends on its own (like a peer of an earlier version) answers the probes of the streaming side: no fallback in 60 s', async () => {
    const { net, a, b, seen } = await connected(5_000, undefined, true);
    const stream = setInterval(() => void a.send('unreliable', 'state'), 1000 / 30);
    await vi.advanceTimersByTimeAsync(60_000);
    clearInterval(stream);
    expect(seen.map((s) => s.paths)).toEqual([[], []]);
    expect(seen.map((s) => s.disconnected)).toEqual([0, 0]);
    // A probes once it heard nothing for half of afterMs (checks every 1.25 s: every 3.75 s);
    // B answers each probe with an ack and sends nothing else; answers are not answered.
    const ab = kinds(net.wires[0]);
    const ba = kinds(net.wires[1]);
    expect(ab.probes).toBeGreaterThanOrEqual(12);
    expect(ab.probes).toBeLessThanOrEqual(30);
    expect(ab.acks).toBe(0);
    expect(ba).toEqual({ probes: 0, acks: ab.probes, data: 0 });
    await closeAll(a, b);
  });

  it('nobody sends: each side sends a keepalive per check and hears the other; no probe, no answer, no fallback in 60 s', async () => {
    const { net, a, b, seen } = await connected(1_000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(seen.map((s) => s.paths)).toEqual([[], []]);
    expect(seen.map((s) => s.disconnected)).toEqual([0, 0]);
    for (const wire of net.wires) {
      const k = kinds(wire);
      // One keepalive per 250 ms check.
      expect(k.probes).toBe(0);
      expect(k.data).toBe(0);
      expect(k.acks).toBeGreaterThanOrEqual(235);
      expect(k.acks).toBeLessThanOrEqual(241);
    }
    await closeAll(a, b);
  });

  it('a path that goes silent is still declared dead: fallback within fallback.afterMs plus one check', async () => {
    const { net, a, b, seen } = await connected(2_000);
    const stream = setInterval(() => void a.send('unreliable', 'state'), 1000 / 30);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(seen[0].paths).toEqual([]);
    net.cut = true;
    const cutAt = Date.now();
    let fellBackAt = 0;
    a.once('path-change', () => (fellBackAt = Date.now()));
    await vi.advanceTimersByTimeAsync(5_000);
    clearInterval(stream);
    expect(seen[0].paths).toEqual(['websocket']);
    expect(fellBackAt - cutAt).toBeGreaterThan(2_000);
    expect(fellBackAt - cutAt).toBeLessThanOrEqual(2_000 + 500 + 10);
    await closeAll(a, b);
  });

  it('a room whose channels are all unreliable has nothing to carry keepalives or answer probes: silence does not count as death', async () => {
    const channels = { reliable: { ordered: false, maxRetransmits: 0 } };
    const { net, a, b, seen } = await connected(1_000, channels);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(seen.map((s) => s.paths)).toEqual([[], []]);
    expect(seen.map((s) => s.disconnected)).toEqual([0, 0]);
    // Nothing was sent at all: a keepalive on an unreliable channel would reach the app as a message.
    expect(net.wires[0].frames.length + net.wires[1].frames.length).toBe(0);
    await closeAll(a, b);
  });
});

async function connected(afterMs: number, channels?: Record<string, ChannelOptions>, quietB = false): Promise<ReturnType<typeof pair>> {
  const p = pair(afterMs, channels, quietB);
  await vi.advanceTimersByTimeAsync(100);
  expect(p.a.connected && p.b.connected, 'fake connection did not open').toBe(true);
  return p;
}

async function closeAll(a: RemotePeer, b: RemotePeer): Promise<void> {
  await Promise.all([a.close(), b.close()]);
}
