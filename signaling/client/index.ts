/** The signaling client (browser-safe). */
export { SignalingClient, type SignalingClientOptions, type SignalingClientEvents, type SignalingState, type Welcome, type WebSocketLike, type WebSocketConstructor, type RelayFrame, type ReceivedRelayFrame, type Transport } from './client.js';
export { ExponentialBackoff, type ReconnectPolicy, type ReconnectContext, type BackoffOptions } from './backoff.js';
export { SignalingError, type ClientErrorCode } from './errors.js';
export { TypedEmitter, type EventMap } from './emitter.js';
