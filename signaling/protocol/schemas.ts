/**
 * The rallypoint.v1 wire schemas, shared by server and clients. Uses `zod/mini` so the
 * browser bundle stays small (it tree-shakes; the classic API does not).
 */
import * as z from 'zod/mini';
import { ERROR_CODES, LEAVE_REASONS } from './codes.js';

export { SUBPROTOCOL, DEFAULT_PATH } from './constants.js';

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

export const ClientMessage = z.discriminatedUnion('type', [JoinMessage, SignalMessage, LeaveMessage]);
export type ClientMessage = z.infer<typeof ClientMessage>;
export type JoinMessage = z.infer<typeof JoinMessage>;
export type SignalMessage = z.infer<typeof SignalMessage>;
export type LeaveMessage = z.infer<typeof LeaveMessage>;

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
export const ErrorMessage = z.object({
  type: z.literal('error'),
  code: z.enum(ERROR_CODES),
  message: z.string(),
  ref: z.optional(z.string()),
});

export const ServerMessage = z.discriminatedUnion('type', [
  WelcomeMessage,
  PeerJoinedMessage,
  PeerLeftMessage,
  ServerSignalMessage,
  ErrorMessage,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;
export type WelcomeMessage = z.infer<typeof WelcomeMessage>;
export type PeerJoinedMessage = z.infer<typeof PeerJoinedMessage>;
export type PeerLeftMessage = z.infer<typeof PeerLeftMessage>;
export type ServerSignalMessage = z.infer<typeof ServerSignalMessage>;
export type ErrorMessage = z.infer<typeof ErrorMessage>;
