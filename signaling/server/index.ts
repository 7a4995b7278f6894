/** `rallypoint/server`: the signaling service for Node. */

export type { RedisLink, RedisTarget } from '../cluster/link.js';
export { RedisRoomStore, type RedisRoomStoreOptions } from '../cluster/redis-store.js';
export * from '../protocol/index.js';
export { type Grant, signToken, type VerifyHook, verifyToken } from './auth.js';
export type { Clock } from './clock.js';
export { systemClock } from './clock.js';
export { MemoryRoomStore } from './memory-rooms.js';
export { type IceServersOption, InvalidOptionsError, type InvalidOptionsErrorCode, type SignalingServerOptions } from './options.js';
export type { ClaimOutcome, JoinOutcome, MaybePromise, RelayDelivery, RoomStore, RoomStoreHost, RoomStoreLimits, SendOutcome, Sink } from './rooms.js';
export { attachSignaling, type ListeningSignalingServer, type ListenOptions, listenSignaling, SignalingServer } from './server.js';
