/**
 * `rallypoint`: the browser-safe package root: rooms of WebRTC peers with named channels,
 * the signaling client and the protocol.
 */
export { joinRoom, Room, type JoinRoomOptions, type RoomEvents, type RoomMessage } from './room.js';
export { RemotePeer, type RemotePeerEvents, type RemotePeerState } from './remote-peer.js';
export { DEFAULT_RESTART, DEFAULT_FALLBACK, type FallbackPolicy, type RestartPolicy } from './policies.js';
export type { Clock } from './clock.js';
export { CHANNEL_PRESETS, type ChannelOptions } from './channels.js';
export { DEFAULT_FLOW, DEFAULT_MAX_MESSAGE_SIZE, type FlowLimits } from './flow.js';
export type { SendData, MessageData } from './channel.js';
export { PeerError, type PeerErrorCode } from './errors.js';
export type { PeerStats, PeerPath, CandidateInfo } from './stats.js';
export type { RtcRuntime, SendGate } from './runtime/types.js';
export type { SignalPayload } from './negotiation.js';
export * from '../signaling/client/index.js';
// The protocol without its zod schemas (those are in `rallypoint/protocol` and
// `rallypoint/server`): the browser bundle validates with the equivalent guards.
// Only what a browser app needs of it: the server's side (close-code mapping, upgrade
// refusals, the nesting check, the default limits; `welcome.limits` has those in force) is in
// `rallypoint/protocol`, outside the bundle's size budget.
export { ERROR_CODES, CLOSE_CODES, FINAL_CLOSE_CODES, LEAVE_REASONS, type ErrorCode, type CloseCode, type LeaveReason } from '../signaling/protocol/codes.js';
export type { Limits, AnnouncedLimits } from '../signaling/protocol/limits.js';
export * from '../signaling/protocol/constants.js';
export * from '../signaling/protocol/guards.js';
export * from '../signaling/protocol/client-codec.js';
export { utf8Length } from '../signaling/protocol/utf8.js';
export type {
  ClientMessage,
  ServerMessage,
  JoinMessage,
  SignalMessage,
  LeaveMessage,
  WelcomeMessage,
  PeerJoinedMessage,
  PeerLeftMessage,
  ServerSignalMessage,
  ErrorMessage,
  PeerInfo,
  IceServer,
} from '../signaling/protocol/schemas.js';
