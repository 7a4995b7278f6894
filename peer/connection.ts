/**
 * One generation of the connection to a remote peer: an RTCPeerConnection and its
 * negotiator. A rebuild replaces it with the next generation (`gen` + 1); signaling payloads
 * carry their generation, so those of a replaced connection are recognised and dropped.
 */
import { DEFAULT_MAX_MESSAGE_SIZE } from './flow.js';
import type { Negotiator } from './negotiation.js';
import type { SendGate } from './runtime/types.js';

export interface Connection {
  gen: number;
  pc: RTCPeerConnection;
  negotiator: Negotiator;
  /** The runtime's send gate, once looked up (undefined: not yet). */
  gate: SendGate | null | undefined;
}

/** Reads the SCTP max message size, if the runtime exposes it (W3C RTCSctpTransport). */
export function maxMessageSizeOf(pc: RTCPeerConnection | undefined): number {
  const sctp = (pc as { sctp?: { maxMessageSize?: unknown } | null } | undefined)?.sctp;
  const size = sctp?.maxMessageSize as number;
  // Number.isFinite is false for anything but a finite number (no coercion).
  return Number.isFinite(size) && size > 0 ? size : DEFAULT_MAX_MESSAGE_SIZE;
}

/**
 * Closes a connection that is being replaced or whose peer is closing; resolves once the
 * runtime released it (werift closes its sockets asynchronously).
 */
export function disposeConnection(conn: Connection): Promise<void> {
  conn.negotiator.close();
  conn.pc.onconnectionstatechange = null;
  conn.pc.oniceconnectionstatechange = null;
  conn.pc.ondatachannel = null;
  let done: unknown;
  try {
    done = (conn.pc.close as () => unknown)();
  } catch {
    // Closing twice is harmless.
  }
  return Promise.resolve(done).then(
    () => undefined,
    () => undefined,
  );
}
