import { describe, expect, it } from 'vitest';
import { Negotiator, type SignalPayload } from '../../peer/negotiation.js';

const cand = (n: number): RTCIceCandidate => {
  const init = { candidate: `candidate:${n} 1 udp 2130706431 10.0.0.${n} 9 typ host`, sdpMid: '0', sdpMLineIndex: 0 };
  return { ...init, toJSON: () => init } as unknown as RTCIceCandidate;
};

/**
 * An RTCPeerConnection that gathers like werift: it fires `icecandidate` while
 * `setLocalDescription` is still pending (browsers fire them after it resolved).
 */
class EagerGatherer {
  signalingState: RTCSignalingState = 'stable';
  localDescription: RTCSessionDescriptionInit | null = null;
  remoteDescription: RTCSessionDescriptionInit | null = null;
  onicecandidate: ((ev: { candidate: RTCIceCandidate | null }) => void) | null = null;
  /** Runs inside setLocalDescription, after the first candidate. */
  duringSet: (() => void) | null = null;
  private n = 0;

  async createOffer(): Promise<RTCSessionDescriptionInit> {
    return { type: 'offer', sdp: 'offer-sdp' };
  }
  async createAnswer(): Promise<RTCSessionDescriptionInit> {
    return { type: 'answer', sdp: 'answer-sdp' };
  }
  async setLocalDescription(d: RTCSessionDescriptionInit): Promise<void> {
    this.onicecandidate?.({ candidate: cand(++this.n) });
    this.duringSet?.();
    await Promise.resolve();
    this.onicecandidate?.({ candidate: cand(++this.n) });
    this.localDescription = d;
    this.signalingState = d.type === 'offer' ? 'have-local-offer' : 'stable';
  }
  async setRemoteDescription(d: RTCSessionDescriptionInit): Promise<void> {
    this.remoteDescription = d;
    this.signalingState = d.type === 'offer' ? 'have-remote-offer' : 'stable';
  }
  async addIceCandidate(): Promise<void> {}
}

const kinds = (sent: SignalPayload[]): string[] =>
  sent.map((p) => (p.description ? (p.description.type as string) : p.candidate === null ? 'end' : `c${/^candidate:(\d+)/.exec(p.candidate?.candidate ?? '')?.[1]}`));

describe('Negotiator: local candidates never overtake their description', () => {
  it('sends the offer before candidates gathered during setLocalDescription, later ones at once', async () => {
    const pc = new EagerGatherer();
    const sent: SignalPayload[] = [];
    const errors: unknown[] = [];
    const n = new Negotiator(pc as unknown as RTCPeerConnection, { polite: false, send: (p) => sent.push(p), onError: (e) => errors.push(e) });
    await n.offer();
    pc.onicecandidate?.({ candidate: cand(9) });
    pc.onicecandidate?.({ candidate: null });
    expect(kinds(sent)).toEqual(['offer', 'c1', 'c2', 'c9', 'end']);
    expect(errors).toEqual([]);
  });

  it('sends the answer before its candidates', async () => {
    const pc = new EagerGatherer();
    const sent: SignalPayload[] = [];
    const n = new Negotiator(pc as unknown as RTCPeerConnection, { polite: true, send: (p) => sent.push(p), onError: () => {} });
    await n.receive({ description: { type: 'offer', sdp: 'remote-offer' } });
    expect(kinds(sent)).toEqual(['answer', 'c1', 'c2']);
  });

  it('drops held candidates when closed meanwhile', async () => {
    const pc = new EagerGatherer();
    const sent: SignalPayload[] = [];
    const n = new Negotiator(pc as unknown as RTCPeerConnection, { polite: false, send: (p) => sent.push(p), onError: () => {} });
    pc.duringSet = () => n.close();
    await n.offer();
    expect(pc.localDescription?.type).toBe('offer'); // it got as far as gathering
    expect(sent).toEqual([]);
  });
});
