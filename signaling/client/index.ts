/** The signaling client (browser-safe). */

export { type BackoffOptions, ExponentialBackoff, type ReconnectContext, type ReconnectPolicy } from './backoff.js';
export {
  type ReceivedRelayFrame,
  type RelayFrame,
  SignalingClient,
  type SignalingClientEvents,
  type SignalingClientOptions,
  type SignalingState,
  type Transport,
  type WebSocketConstructor,
  type WebSocketLike,
  type Welcome,
} from './client.js';
export { type EventMap, TypedEmitter } from './emitter.js';
export { type ClientErrorCode, SignalingError } from './errors.js';
