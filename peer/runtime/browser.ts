import { PeerError } from '../errors.js';
import type { RtcRuntime } from './types.js';

/** The runtime's own WebRTC (browsers, Deno, or a global polyfill). */
export function nativeRuntime(): RtcRuntime {
  const g = globalThis as { RTCPeerConnection?: RtcRuntime['RTCPeerConnection'] };
  if (!g.RTCPeerConnection) {
    throw new PeerError('no-runtime', 'no global RTCPeerConnection: in Node import joinRoom from "rallypoint/node" (werift), or pass options.rtc');
  }
  return { RTCPeerConnection: g.RTCPeerConnection };
}
