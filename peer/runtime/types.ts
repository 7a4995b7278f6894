/**
 * A W3C WebRTC implementation: the browser's, werift (the Node default), @roamhq/wrtc, or
 * any object with a compatible `RTCPeerConnection` constructor.
 */
export interface RtcRuntime {
  RTCPeerConnection: new (configuration?: RTCConfiguration) => RTCPeerConnection;
  /** Whether data channels survive an ICE restart (default true; werift 0.24: false). */
  iceRestart?: boolean;
  /**
   * Optional flow signal for runtimes whose `bufferedAmount` does not show what waits in
   * their SCTP association (werift hands messages to SCTP at once).
   */
  sendGate?(pc: RTCPeerConnection): SendGate | null;
}

/** Tells senders when the transport below the data channels is saturated. */
export interface SendGate {
  /** True while no more data should be handed to the connection. */
  blocked(): boolean;
  /** Calls `cb` whenever the transport drained; returns an unsubscribe function. */
  onDrain(cb: () => void): () => void;
}
