/**
 * A fake RTCPeerConnection for two RemotePeers (peer/remote-peer.ts) on a fake clock: the
 * initiator's data channels and the answerer's deliver to each other after 1 ms (a timer on
 * the clock: vitest's fake timers through the system clock, or test/helpers/fake-clock.ts),
 * unless the test cuts the link. `fakePair()` builds two RemotePeers that negotiate through
 * each other's handleSignal, as the signaling service would carry it, and can carry the
 * fallback between them too. Used by test/unit/liveness-fake.test.ts,
 * test/peer/state-machine.test.ts and test/adversarial/.
 */
import { type ChannelOptions, resolveChannels } from '../../peer/channels.js';
import { type Clock, systemClock } from '../../peer/clock.js';
import type { FallbackLink } from '../../peer/fallback-link.js';
import { DEFAULT_FLOW } from '../../peer/flow.js';
import { decodeFrame } from '../../peer/framing.js';
import { DEFAULT_RESTART, RemotePeer, type RestartPolicy } from '../../peer/remote-peer.js';

/** What crossed the fake link, per direction (from the sender's side). */
export interface Wire {
  /** Every message written, by channel label. */
  frames: { label: string; data: string | Uint8Array }[];
}

export class FakeDc {
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
    if (this.readyState !== 'open' || this.net.sendThrows) throw new Error('InvalidStateError: not open');
    const copy = typeof data === 'string' ? data : data.slice();
    this.wire.frames.push({ label: this.label, data: copy });
    if (this.net.cut) return; // the path died silently: no error, nothing arrives
    const remote = this.remote;
    this.net.clock.setTimeout(() => remote?.onmessage?.({ data: copy }), 1);
  }
  close(): void {
    this.readyState = 'closed';
  }
}

/** Two fake connections: the initiator's (index 0) and the answerer's (index 1). */
export class FakeNet {
  cut = false;
  /** ICE cannot connect: an answer is applied but the channels never open. */
  blocked = false;
  /** What getStats reports as the selected pair's path (null: no pair, as before ICE). */
  path: 'direct' | 'relay' | null = null;
  /** The newest connection of each side: [initiator, answerer]. */
  readonly latest: (FakePc | undefined)[] = [undefined, undefined];
  constructor(readonly clock: Clock = systemClock) {}
  /** Every data channel send throws (a transport that is going away). */
  sendThrows = false;
  readonly pcs: FakePc[] = [];
  readonly wires: [Wire, Wire] = [{ frames: [] }, { frames: [] }];
  /** The answerer's ends of the channels, by label (a test may write raw frames on them). */
  readonly answerer = new Map<string, FakeDc>();

  /** Once the answer is applied: a matching channel at the answerer per initiator channel, then both open. */
  link(): void {
    if (this.blocked) return;
    const [a, b] = this.latest as [FakePc, FakePc];
    for (const dc of a.channels) {
      const other = new FakeDc(dc.label, this, this.wires[1]);
      dc.remote = other;
      other.remote = dc;
      this.answerer.set(dc.label, other);
      b.ondatachannel?.({ channel: other });
      for (const end of [dc, other]) {
        end.readyState = 'open';
        end.onopen?.();
      }
    }
  }
}

export class FakePc {
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
  /** RTCSctpTransport, for its maxMessageSize: none unless a test sets one. */
  sctp: { maxMessageSize: number } | null = null;
  constructor(
    private readonly net: FakeNet,
    side: 0 | 1 = net.pcs.length === 0 ? 0 : 1,
  ) {
    net.pcs.push(this);
    net.latest[side] = this;
  }
  /** ICE reports `state` (both the connection and the ICE connection state). */
  report(state: 'connected' | 'disconnected' | 'failed'): void {
    this.connectionState = state;
    this.iceConnectionState = state;
    (this.onconnectionstatechange as (() => void) | null)?.();
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
    const path = this.net.path;
    if (!path) return new Map();
    const type = path === 'relay' ? 'relay' : 'host';
    const entries = [
      { id: 't', type: 'transport', selectedCandidatePairId: 'p' },
      { id: 'p', type: 'candidate-pair', state: 'succeeded', nominated: true, localCandidateId: 'l', remoteCandidateId: 'r' },
      { id: 'l', type: 'local-candidate', candidateType: type },
      { id: 'r', type: 'remote-candidate', candidateType: 'host' },
    ];
    return new Map(entries.map((e) => [e.id, e]));
  }
  close(): void {}
}

/** A fallback link that accepts everything and delivers nothing (the fallback needs one to move to). */
const fallbackLink: FallbackLink = { enabled: true, fragmentBytes: 12_000, trySend: () => true, sendLatest: () => undefined, onDrain: () => () => undefined };

export interface Seen {
  paths: string[];
  disconnected: number;
  errors: string[];
}

export interface FakePairOptions {
  /** `fallback.afterMs`; false: no fallback (and no liveness) on either side. */
  afterMs: number | false;
  channels?: Record<string, ChannelOptions>;
  /** The clock of both peers and of the fake network; default the system clock. */
  clock?: Clock;
  restart?: Partial<RestartPolicy>;
  /** B has no liveness of its own (`fallback: false`), as a peer that never sends unless asked. */
  quietB?: boolean;
  /** Carry fallback frames to the other peer (after 2 ms), as the signaling service would. */
  deliverFallback?: boolean;
}

export interface FakePair {
  net: FakeNet;
  /** A: the initiator (the newcomer); B: the answerer. */
  a: RemotePeer;
  b: RemotePeer;
  seen: [Seen, Seen];
  /** Messages each side received: [A's, B's]. */
  got: [{ channel: string; data: unknown }[], { channel: string; data: unknown }[]];
}

/** Two fake peers, negotiating from now on (advance the clock to connect them). */
export function fakePair(opts: FakePairOptions): FakePair {
  const clock = opts.clock ?? systemClock;
  const net = new FakeNet(clock);
  const resolved = resolveChannels(opts.channels);
  const peers: RemotePeer[] = [];
  const ids = ['a', 'b'] as const;
  const link = (i: 0 | 1): FallbackLink => {
    if (!opts.deliverFallback) return fallbackLink;
    const deliver = (channel: string, frame: object): void => void clock.setTimeout(() => peers[1 - i]?.handleRelay({ ...frame, from: ids[i], channel }), 2);
    return {
      enabled: true,
      fragmentBytes: 12_000,
      trySend: (channel, frame) => {
        deliver(channel, frame);
        return true;
      },
      sendLatest: (channel, frame) => deliver(channel, frame),
      onDrain: () => () => undefined,
    };
  };
  const make = (i: 0 | 1): RemotePeer =>
    new RemotePeer({
      id: ids[1 - i]!,
      localId: ids[i]!,
      meta: undefined,
      initiator: i === 0,
      channels: resolved,
      createConnection: () => new FakePc(net, i) as unknown as RTCPeerConnection,
      caps: { iceRestart: false },
      flow: DEFAULT_FLOW,
      restart: { ...DEFAULT_RESTART, ...opts.restart },
      fallbackLink: link(i),
      fallback: opts.afterMs === false || (opts.quietB && i === 1) ? false : { afterMs: opts.afterMs },
      clock,
      // The signaling service: to the other peer, a little later.
      send: (payload) => void clock.setTimeout(() => void peers[1 - i]?.handleSignal(payload), 5),
    });
  // The answerer exists first (it is in the room when the initiator joins).
  peers[1] = make(1);
  peers[0] = make(0);
  const seen: [Seen, Seen] = [
    { paths: [], disconnected: 0, errors: [] },
    { paths: [], disconnected: 0, errors: [] },
  ];
  const got: FakePair['got'] = [[], []];
  peers.forEach((p, i) => {
    p.on('path-change', (path) => seen[i]!.paths.push(path));
    p.on('disconnected', () => seen[i]!.disconnected++);
    p.on('error', (err) => seen[i]!.errors.push(err.code));
    p.on('message', (channel, data) => got[i]!.push({ channel, data }));
  });
  return { net, a: peers[0]!, b: peers[1]!, seen, got };
}

/** Two connected fakes; `quietB`: B has no liveness of its own (`fallback: false`), as a peer that never sends unless asked. */
export function pair(afterMs: number, channels?: Record<string, ChannelOptions>, quietB = false): { net: FakeNet; a: RemotePeer; b: RemotePeer; seen: [Seen, Seen] } {
  return fakePair({ afterMs, ...(channels ? { channels } : {}), quietB });
}

/** Frames of `wire` that are liveness probes (empty, flagless fragments), acknowledgements (keepalives and answers) or anything else. */
export function kinds(wire: Wire): { probes: number; acks: number; data: number } {
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

/**
 * Moves a FakeClock (test/helpers/fake-clock.ts) on by `ms`, `step` ms at a time, letting
 * promises settle between steps (negotiation runs on promises, not timers).
 */
export async function run(clock: { advance(ms: number): void }, ms: number, step = 5): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(Math.min(step, ms - t));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
