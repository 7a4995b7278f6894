import type { SignalPayload } from './negotiation.js';

const SDP_TYPES = new Set(['offer', 'answer', 'pranswer', 'rollback']);

/** Checks what another peer sent through the signaling service before it reaches the RTCPeerConnection. */
export function toSignalPayload(data: unknown): SignalPayload | null {
  if (typeof data !== 'object' || data === null) return null;
  const d = data as Record<string, unknown>;
  const gen = d.gen === undefined ? 0 : d.gen;
  // Number.isInteger is false for anything but an integer number (no coercion).
  if (!Number.isInteger(gen) || (gen as number) < 0) return null;
  const base: SignalPayload = { gen: gen as number };
  if (typeof d.caps === 'object' && d.caps !== null) base.caps = { iceRestart: (d.caps as { iceRestart?: unknown }).iceRestart === true };
  const payload = parseBody(d);
  return payload ? { ...base, ...payload } : null;
}

function parseBody(d: Record<string, unknown>): SignalPayload | null {
  if (d.reconnect === true) return { reconnect: true };
  if (d.fallback === true) return { fallback: true };
  if (d.description !== undefined) {
    // Anything but an object with one of the type strings (null included) fails the lookup.
    const desc = d.description as Record<string, unknown>;
    if (!SDP_TYPES.has(desc?.type as string)) return null;
    if (desc.sdp !== undefined && typeof desc.sdp !== 'string') return null;
    return { description: { type: desc.type as RTCSdpType, ...(typeof desc.sdp === 'string' ? { sdp: desc.sdp } : {}) } };
  }
  if (d.candidate === null) return { candidate: null };
  if (typeof d.candidate === 'object') {
    const c = d.candidate as Record<string, unknown>;
    if (typeof c.candidate !== 'string') return null;
    const out: RTCIceCandidateInit = { candidate: c.candidate };
    if (typeof c.sdpMid === 'string') out.sdpMid = c.sdpMid;
    if (typeof c.sdpMLineIndex === 'number') out.sdpMLineIndex = c.sdpMLineIndex;
    if (typeof c.usernameFragment === 'string') out.usernameFragment = c.usernameFragment;
    return { candidate: out };
  }
  return null;
}
