import { PeerError } from './errors.js';

/** What one side can do; sent with descriptions so the other side can choose how to recover. */
export interface PeerCaps {
  /** The runtime keeps SCTP/DTLS across an ICE restart (werift 0.24 does not). */
  iceRestart: boolean;
}

/** What peers exchange through the signaling service (`signal.data`). */
export interface SignalPayload {
  /**
   * Connection generation: a rebuilt RTCPeerConnection gets the next one, so payloads of a
   * connection that was replaced are recognised and dropped.
   */
  gen?: number;
  description?: RTCSessionDescriptionInit;
  /** A trickled candidate; null marks the end of candidates. */
  candidate?: RTCIceCandidateInit | null;
  caps?: PeerCaps;
  /** Asks the initiator to rebuild the connection (the asking side lost it). */
  reconnect?: true;
  /** The sender gave up on connection `gen` and sends over the WebSocket fallback. */
  fallback?: true;
}

export interface NegotiatorOptions {
  /** The polite peer yields on offer collisions (W3C WebRTC §10.7 "perfect negotiation"). */
  polite: boolean;
  send(payload: SignalPayload): void;
  onError(err: PeerError): void;
}

function candidateJson(c: RTCIceCandidate): RTCIceCandidateInit {
  if (typeof c.toJSON === 'function') return c.toJSON();
  return { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex };
}

/**
 * Perfect negotiation over one RTCPeerConnection. Every negotiation step runs one at a time
 * on a chain (setLocal/RemoteDescription must not interleave), remote candidates that arrive
 * before the remote description are queued, and offer collisions are settled by politeness.
 */
export class Negotiator {
  #chain: Promise<void> = Promise.resolve();
  #ignoreOffer = false;
  readonly #pendingCandidates: RTCIceCandidateInit[] = [];
  /** Local candidates gathered while a local description is being set; null otherwise. */
  #heldCandidates: (RTCIceCandidateInit | null)[] | null = null;
  #closed = false;

  readonly #pc: RTCPeerConnection;
  readonly #opts: NegotiatorOptions;

  constructor(pc: RTCPeerConnection, opts: NegotiatorOptions) {
    this.#pc = pc;
    this.#opts = opts;
    pc.onicecandidate = (ev) => {
      if (this.#closed) return;
      const candidate = ev.candidate ? candidateJson(ev.candidate) : null;
      if (this.#heldCandidates) this.#heldCandidates.push(candidate);
      else this.#opts.send({ candidate });
    };
  }

  /**
   * Sets a local description and sends it, then the candidates gathered meanwhile. werift
   * fires `icecandidate` before `setLocalDescription` resolves: sent at once, those candidates
   * would overtake the description and reach a peer without a remote description (a plain
   * browser RTCPeerConnection rejects them: "The remote description was null").
   */
  async #setAndSendLocal(description: RTCSessionDescriptionInit): Promise<void> {
    this.#heldCandidates = [];
    try {
      await this.#pc.setLocalDescription(description);
      const local = this.#pc.localDescription;
      if (local && !this.#closed) this.#opts.send({ description: { type: local.type, sdp: local.sdp } });
    } finally {
      const held = this.#heldCandidates;
      this.#heldCandidates = null;
      if (!this.#closed) for (const candidate of held) this.#opts.send({ candidate });
    }
  }

  /** Queues an offer (an ICE restart when asked). */
  offer(iceRestart = false): Promise<void> {
    return this.#run(async () => {
      if (this.#pc.signalingState !== 'stable') return; // a negotiation is under way; it will carry our changes
      const offer = await this.#pc.createOffer(iceRestart ? { iceRestart: true } : undefined);
      if (this.#closed || this.#pc.signalingState !== 'stable') return;
      await this.#setAndSendLocal(offer);
    });
  }

  /** Applies a payload from the remote peer. */
  receive(payload: SignalPayload): Promise<void> {
    return this.#run(async () => {
      if (payload.description) await this.#onDescription(payload.description);
      else if (payload.candidate !== undefined) await this.#onCandidate(payload.candidate);
    });
  }

  async #onDescription(description: RTCSessionDescriptionInit): Promise<void> {
    const pc = this.#pc;
    const collision = description.type === 'offer' && pc.signalingState !== 'stable';
    this.#ignoreOffer = !this.#opts.polite && collision;
    if (this.#ignoreOffer) return;
    if (collision) await pc.setLocalDescription({ type: 'rollback' });
    await pc.setRemoteDescription(description);
    for (const c of this.#pendingCandidates.splice(0)) await this.#addCandidate(c);
    if (description.type === 'offer') {
      const answer = await pc.createAnswer();
      if (this.#closed) return;
      await this.#setAndSendLocal(answer);
    }
  }

  async #onCandidate(candidate: RTCIceCandidateInit | null): Promise<void> {
    if (candidate === null || !candidate.candidate) return; // end-of-candidates: nothing to do for data channels
    if (!this.#pc.remoteDescription) {
      this.#pendingCandidates.push(candidate);
      return;
    }
    await this.#addCandidate(candidate);
  }

  async #addCandidate(candidate: RTCIceCandidateInit): Promise<void> {
    try {
      await this.#pc.addIceCandidate(candidate);
    } catch (err) {
      // Candidates of an offer we ignored in a collision are expected to fail.
      if (!this.#ignoreOffer) this.#opts.onError(new PeerError('negotiation-failed', `addIceCandidate failed: ${(err as Error).message}`, { cause: err }));
    }
  }

  #run(step: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(async () => {
      if (this.#closed) return;
      try {
        await step();
      } catch (err) {
        if (!this.#closed) this.#opts.onError(new PeerError('negotiation-failed', `negotiation failed: ${(err as Error).message}`, { cause: err }));
      }
    });
    this.#chain = next;
    return next;
  }

  close(): void {
    this.#closed = true;
    this.#pc.onicecandidate = null;
    this.#pendingCandidates.length = 0;
  }
}
