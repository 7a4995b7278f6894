/**
 * `rallypoint`: the browser-safe package root: rooms of WebRTC peers with named channels,
 * the signaling client and the protocol.
 */
export { joinRoom, Room, type JoinRoomOptions, type RoomEvents, type RoomMessage } from './room.js';
export { RemotePeer, DEFAULT_RESTART, type RemotePeerEvents, type RemotePeerState, type RestartPolicy } from './remote-peer.js';
export { CHANNEL_PRESETS, type ChannelOptions } from './channels.js';
export { DEFAULT_FLOW, DEFAULT_MAX_MESSAGE_SIZE, type FlowLimits, type SendData, type MessageData } from './channel.js';
export { PeerError, type PeerErrorCode } from './errors.js';
export type { PeerStats, PeerPath, CandidateInfo } from './stats.js';
export type { RtcRuntime, SendGate } from './runtime/types.js';
export type { SignalPayload } from './negotiation.js';
export * from '../signaling/client/index.js';
export * from '../signaling/protocol/index.js';
