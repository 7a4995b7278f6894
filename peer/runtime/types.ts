/**
 * A W3C WebRTC implementation: the browser's, werift (the Node default), @roamhq/wrtc, or
 * any object with a compatible `RTCPeerConnection` constructor.
 */
export interface RtcRuntime {
  RTCPeerConnection: new (configuration?: RTCConfiguration) => RTCPeerConnection;
}
