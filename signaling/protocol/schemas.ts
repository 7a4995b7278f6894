/**
 * The rallypoint.v1 wire schemas, shared by server and clients. Uses `zod/mini` so the
 * browser bundle stays small (it tree-shakes; the classic API does not).
 */
import * as z from 'zod/mini';
import { ERROR_CODES, LEAVE_REASONS } from './codes.js';

export { DEFAULT_PATH, SUBPROTOCOL } from './constants.js';

/** Room names: 1-64 of [A-Za-z0-9_.-]. */
export const RoomName = z.string().check(z.minLength(1), z.maxLength(64), z.regex(/^[A-Za-z0-9_.-]+$/));
/** Server-assigned peer ids (opaque to clients; at most 64 chars). */
export const PeerId = z.string().check(z.minLength(1), z.maxLength(64));
/** Optional client correlation value, echoed in `error.ref`. */
const Ref = z.optional(z.string().check(z.maxLength(64)));
/** Per-peer metadata: a JSON object (its size is limited by `maxMetaBytes`). */
export const Meta = z.record(z.string(), z.unknown());

export const JoinMessage = z.object({
  type: z.literal('join'),
  room: RoomName,
  meta: z.optional(Meta),
  resume: z.optional(z.string().check(z.minLength(1), z.maxLength(128))),
  ref: Ref,
});
export const SignalMessage = z.object({
  type: z.literal('signal'),
  to: PeerId,
  // Opaque JSON: SDP, ICE candidates or a simple-peer blob. Present and not undefined.
  data: z.unknown().check(z.refine((v) => v !== undefined)),
  ref: Ref,
});
export const LeaveMessage = z.object({ type: z.literal('leave'), ref: Ref });

/** Relay channel names, the peer library's: 1-64 of [A-Za-z0-9_.-]. */
export const ChannelName = z.string().check(z.minLength(1), z.maxLength(64), z.regex(/^[A-Za-z0-9_.-]+$/));
/**
 * The fields of a relay frame that the server passes through untouched: the payload
 * (`b64`: `data` is standard padded base64 of bytes, RFC 4648 §4; the server never decodes
 * it), and the peer library's sequencing, acknowledgement and fragmentation (opaque here).
 */
const relayFields = {
  channel: ChannelName,
  data: z.optional(z.string()),
  b64: z.optional(z.literal(true)),
  seq: z.optional(z.uint32()),
  ack: z.optional(z.uint32()),
  more: z.optional(z.literal(true)),
  /** The server may drop it (or keep only the newest per sender and channel), silently. */
  unreliable: z.optional(z.literal(true)),
};
export const RelayMessage = z.object({ type: z.literal('relay'), to: PeerId, ...relayFields, ref: Ref });
/** Asks the server for a `pong`: a browser cannot see WebSocket pings, so it checks liveness itself. */
export const PingMessage = z.object({ type: z.literal('ping'), ref: Ref });

export const ClientMessage = z.discriminatedUnion('type', [JoinMessage, SignalMessage, LeaveMessage, RelayMessage, PingMessage]);
export type ClientMessage = z.infer<typeof ClientMessage>;
export type JoinMessage = z.infer<typeof JoinMessage>;
export type SignalMessage = z.infer<typeof SignalMessage>;
export type LeaveMessage = z.infer<typeof LeaveMessage>;
export type RelayMessage = z.infer<typeof RelayMessage>;
export type PingMessage = z.infer<typeof PingMessage>;

export const PeerInfo = z.object({ id: PeerId, meta: z.optional(Meta) });
export type PeerInfo = z.infer<typeof PeerInfo>;

/** W3C RTCIceServer, as handed to RTCPeerConnection. */
export const IceServer = z.object({
  urls: z.union([z.string(), z.array(z.string())]),
  username: z.optional(z.string()),
  credential: z.optional(z.string()),
});
export type IceServer = z.infer<typeof IceServer>;

export const WelcomeMessage = z.object({
  type: z.literal('welcome'),
  id: PeerId,
  room: RoomName,
  peers: z.array(PeerInfo),
  iceServers: z.array(IceServer),
  resume: z.object({ token: z.string(), graceMs: z.number() }),
  /** True when this welcome continues an earlier session (same id). */
  resumed: z.boolean(),
  limits: z.record(z.string(), z.number()),
});
export const PeerJoinedMessage = z.object({ type: z.literal('peer-joined'), peer: PeerInfo });
export const PeerLeftMessage = z.object({
  type: z.literal('peer-left'),
  id: PeerId,
  reason: z.enum(LEAVE_REASONS),
});
export const ServerSignalMessage = z.object({
  type: z.literal('signal'),
  from: PeerId,
  data: z.unknown().check(z.refine((v) => v !== undefined)),
});
/** A relayed frame; `from` is stamped by the server. */
export const ServerRelayMessage = z.object({ type: z.literal('relay'), from: PeerId, ...relayFields });
export const ErrorMessage = z.object({
  type: z.literal('error'),
  code: z.enum(ERROR_CODES),
  message: z.string(),
  ref: z.optional(z.string()),
});

/** The answer to `ping` (its `ref` echoed). */
export const PongMessage = z.object({ type: z.literal('pong'), ref: z.optional(z.string()) });

export const ServerMessage = z.discriminatedUnion('type', [WelcomeMessage, PeerJoinedMessage, PeerLeftMessage, ServerSignalMessage, ServerRelayMessage, ErrorMessage, PongMessage]);
export type ServerMessage = z.infer<typeof ServerMessage>;
export type WelcomeMessage = z.infer<typeof WelcomeMessage>;
export type PeerJoinedMessage = z.infer<typeof PeerJoinedMessage>;
export type PeerLeftMessage = z.infer<typeof PeerLeftMessage>;
export type ServerSignalMessage = z.infer<typeof ServerSignalMessage>;
export type ServerRelayMessage = z.infer<typeof ServerRelayMessage>;
export type ErrorMessage = z.infer<typeof ErrorMessage>;
export type PongMessage = z.infer<typeof PongMessage>;
