/** How much a channel may buffer, and how large a message may be. */
export interface FlowLimits {
  /** Reliable: a send waits while more than this many bytes are buffered. Default 1 MiB. */
  highWaterMark: number;
  /** Reliable: waiting sends resume when buffered bytes fall to this. Default 256 KiB. */
  lowWaterMark: number;
  /** Reliable: bytes that may wait in our queue; beyond it a send rejects with `buffer-full`. Default 8 MiB. */
  maxQueuedBytes: number;
  /** Unreliable: drop new messages while more than this is buffered. Default 16 KiB. */
  dropAbove: number;
}

export const DEFAULT_FLOW: FlowLimits = {
  highWaterMark: 1024 * 1024,
  lowWaterMark: 256 * 1024,
  maxQueuedBytes: 8 * 1024 * 1024,
  // Stale state is worthless: about a second of 60 Hz x 200 B state, then drop.
  dropAbove: 16 * 1024,
};

/** Default SCTP max message size when the remote does not say (RFC 8841 §6: 64 KiB). */
export const DEFAULT_MAX_MESSAGE_SIZE = 65_536;

/**
 * The least a receiver lets a message under reassembly grow to (256 KiB: Chromium's SCTP max
 * message size). The sender checked the message against ITS max message size, of its
 * current connection, which the receiver cannot see (its own rebuilt connection may have no
 * SCTP transport yet while the message comes over the WebSocket fallback); so the cap is the
 * larger of this and the largest max message size this channel ever saw, that one counted
 * at most MAX_MESSAGE_BYTES. It bounds memory: an honest peer is never refused.
 */
export const MIN_REASSEMBLY_CAP = 262_144;

/**
 * The largest message this library sends or reassembles: 16 MiB, whatever max message size
 * a connection reports. That figure comes from the remote's SDP (`a=max-message-size`, RFC
 * 8841 section 6) and Firefox honours about 1 GiB, so without a ceiling a hostile peer could
 * make this side hold a 1 GiB message under reassembly (about 8 times that in fragments).
 * send() refuses bigger messages with `too-large`, so an honest peer never meets the ceiling;
 * send larger data in parts.
 */
export const MAX_MESSAGE_BYTES = 16_777_216;
