/** `rallypoint/node`: the package root with Node defaults (the `ws` WebSocket). */
import { WebSocket } from 'ws';
import { SignalingClient, type SignalingClientOptions } from '../signaling/client/index.js';

export * from './index.js';

/** A signaling client that uses the `ws` package (Node 20 has no stable global WebSocket). */
export function createNodeSignalingClient(options: Omit<SignalingClientOptions, 'WebSocket'> & Partial<Pick<SignalingClientOptions, 'WebSocket'>>): SignalingClient {
  return new SignalingClient({ WebSocket: WebSocket as unknown as SignalingClientOptions['WebSocket'], ...options });
}
