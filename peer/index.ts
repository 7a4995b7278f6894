/**
 * `rallypoint`: the browser-safe package root: rooms of WebRTC peers with named channels,
 * the signaling client and the protocol.
 */

export * from '../signaling/client/index.js';
export * from '../signaling/protocol/client-codec.js';
// The protocol without its zod schemas (those are in `rallypoint/protocol` and
// `rallypoint/server`): the browser bundle validates with the equivalent guards.
// Only what a browser app needs of it: the server's side (close-code mapping, upgrade
// refusals, the nesting check, the default limits; `welcome.limits` has those in force) is in
// `rallypoint/protocol`, outside the bundle's size budget.
export { CLOSE_CODES, type CloseCode, ERROR_CODES, type ErrorCode, FINAL_CLOSE_CODES, LEAVE_REASONS, type LeaveReason } from '../signaling/protocol/codes.js';
export * from '../signaling/protocol/constants.js';
export * from '../signaling/protocol/guards.js';
export type { AnnouncedLimits, Limits } from '../signaling/protocol/limits.js';
export type {
  ClientMessage,
  ErrorMessage,
  IceServer,
  JoinMessage,
  LeaveMessage,
  PeerInfo,
  PeerJoinedMessage,
  PeerLeftMessage,
  ServerMessage,
  ServerSignalMessage,
  SignalMessage,
  WelcomeMessage,
} from '../signaling/protocol/schemas.js';
export { utf8Length } from '../signaling/protocol/utf8.js';
export type { MessageData, SendData } from './channel.js';
export { CHANNEL_PRESETS, type ChannelOptions } from './channels.js';
export type { Clock } from './clock.js';
export { PeerError, type PeerErrorCode } from './errors.js';
export { DEFAULT_FLOW, DEFAULT_MAX_MESSAGE_SIZE, type FlowLimits } from './flow.js';
export type { SignalPayload } from './negotiation.js';
export { DEFAULT_FALLBACK, DEFAULT_RESTART, type FallbackPolicy, type RestartPolicy } from './policies.js';
export { RemotePeer, type RemotePeerEvents, type RemotePeerState } from './remote-peer.js';
export { type JoinRoomOptions, joinRoom, Room, type RoomEvents, type RoomMessage } from './room.js';
export type { RtcRuntime, SendGate } from './runtime/types.js';
export type { CandidateInfo, PeerPath, PeerStats } from './stats.js';
