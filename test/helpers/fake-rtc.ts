/**
 * A fake RTCPeerConnection for two RemotePeers (peer/remote-peer.ts) on a fake clock: the
 * initiator's data channels and the answerer's deliver to each other after 1 ms (a timer, so
 * vitest's fake timers drive it), unless the test cuts the link. `pair()` builds two
 * RemotePeers that negotiate through each other's handleSignal, as the signaling service
 * would carry it. Used by test/unit/liveness-fake.test.ts and test/adversarial/.
 */
import { DEFAULT_FLOW } from '../../peer/channel.js';
import { resolveChannels, type ChannelOptions } from '../../peer/channels.js';
import { decodeFrame } from '../../peer/reliable.js';
import type { RelayLink } from '../../peer/relay-link.js';
import { DEFAULT_RESTART, RemotePeer } from '../../peer/remote-peer.js';

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
    setTimeout(() => remote?.onmessage?.({ data: copy }), 1);
  }
  close(): void {
    this.readyState = 'closed';
  }
}

/** Two fake connections: the initiator's (index 0) and the answerer's (index 1). */
export class FakeNet {
  cut = false;
  /** Every data channel send throws (a transport that is going away). */
  sendThrows = false;
  readonly pcs: FakePc[] = [];
  readonly wires: [Wire, Wire] = [{ frames: [] }, { frames: [] }];
  /** The answerer's ends of the channels, by label (a test may write raw frames on them). */
  readonly answerer = new Map<string, FakeDc>();

  /** Once the answer is applied: a matching channel at the answerer per initiator channel, then both open. */
  link(): void {
    const [a, b] = this.pcs as [FakePc, FakePc];
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

export interface Seen {
  paths: string[];
  disconnected: number;
  errors: string[];
}

/** Two connected fakes; `quietB`: B has no liveness of its own (`fallback: false`), as a peer that never sends unless asked. */
export function pair(afterMs: number, channels?: Record<string, ChannelOptions>, quietB = false): { net: FakeNet; a: RemotePeer; b: RemotePeer; seen: [Seen, Seen] } {
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

