/**
 * `rallypoint/node`: the package root with Node defaults: werift (with rallypoint's fixes)
 * for WebRTC and the `ws` package for signaling.
 */
import { WebSocket } from 'ws';
import { SignalingClient, type SignalingClientOptions, type WebSocketConstructor } from '../signaling/client/index.js';
import { type JoinRoomOptions, joinRoom as joinRoomWith, type Room } from './room.js';
import { weriftRuntime } from './runtime/werift.js';

export * from './index.js';
export { weriftRuntime } from './runtime/werift.js';
export { applyWeriftFixes } from './runtime/werift-fixes.js';

const NodeWebSocket = WebSocket as unknown as WebSocketConstructor;

/** A signaling client that uses the `ws` package (Node 20 has no stable global WebSocket). */
export function createNodeSignalingClient(options: Omit<SignalingClientOptions, 'WebSocket'> & Partial<Pick<SignalingClientOptions, 'WebSocket'>>): SignalingClient {
  return new SignalingClient({ WebSocket: NodeWebSocket, ...options });
}

/** `joinRoom` with werift and `ws` as defaults; pass `rtc` (e.g. `@roamhq/wrtc`) to use another WebRTC. */
export function joinRoom(options: JoinRoomOptions): Promise<Room> {
  return joinRoomWith({ WebSocket: NodeWebSocket, ...options, rtc: options.rtc ?? weriftRuntime() });
}
