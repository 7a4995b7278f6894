/** `rallypoint/server`: the signaling service for Node. */
export { SignalingServer, attachSignaling, listenSignaling, type ListenOptions, type ListeningSignalingServer } from './server.js';
export { InvalidOptionsError, type InvalidOptionsErrorCode, type SignalingServerOptions, type IceServersOption } from './options.js';
export { signToken, verifyToken, type Grant, type VerifyHook } from './auth.js';
export { MemoryRoomStore } from './memory-rooms.js';
export type { RoomStore, RoomStoreLimits, JoinOutcome, Sink, RelayDelivery, MaybePromise } from './rooms.js';
export type { Clock } from './clock.js';
export { systemClock } from './clock.js';
export * from '../protocol/index.js';
export { RedisRoomStore, type RedisRoomStoreOptions } from '../cluster/redis-store.js';
export type { RedisLink, RedisTarget } from '../cluster/link.js';
export type { ClaimOutcome, RoomStoreHost, SendOutcome } from './rooms.js';
