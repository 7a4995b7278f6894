/**
 * `rallypoint`: the browser-safe package root. The peer library arrives with issue 3; for
 * now it exports the signaling client and the protocol.
 */
export * from '../signaling/client/index.js';
export * from '../signaling/protocol/index.js';
