import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { PeerInfo } from '../protocol/index.js';
import type { RelayDelivery } from './relay-frames.js';

/** A result that may be ready now (in-memory) or later (a networked store such as Redis). */
export type MaybePromise<T> = T | Promise<T>;

/** How a `relay` frame may be delivered (relay-frames.ts); part of the store's `Sink`. */
export type { RelayDelivery } from './relay-frames.js';

/** Delivers one encoded frame to a member wherever its connection lives. */
export type Sink = (frame: string, relay?: RelayDelivery) => void;

/** `unavailable`: a shared store (Redis) cannot be reached right now; the client retries. */
export type JoinOutcome = { ok: true; peers: PeerInfo[] } | { ok: false; code: 'room-full' | 'too-many-rooms' | 'unavailable' };

/** true: the member exists (the frame is on its way); false: no such member. */
export type SendOutcome = boolean | 'unavailable';

/** A resume on a node that does not hold the session (cluster stores). */
export type ClaimOutcome = { ok: true; peer: PeerInfo; peers: PeerInfo[]; queued: string[] } | { ok: false; code: 'expired' | 'unavailable' };

/**
 * An HTTP-transport request (PROTOCOL.md, "HTTP transports") that reached a node other than
 * the one holding its session: a cluster store carries it there (no sticky sessions needed).
 * `query` is the request's query string; `body` a POST's body.
 */
export interface ForwardedRequest {
  kind: 'poll' | 'send';
  query: string;
  body: string;
}

/** The holding node's answer: its HTTP status, refusal reason ('' when none) and body. */
export interface ForwardedAnswer {
  status: number;
  reason: string;
  body: string;
}

/** What a store shared by several nodes needs from the server that uses it. */
export interface RoomStoreHost {
  readonly limits: RoomStoreLimits & { resumeGraceMs: number; resumeQueueLength: number };
  readonly logger: Logger;
  readonly registry: Registry;
  /**
   * The member resumed on another node: forget it here without `peer-left` (its
   * connection, if any, is replaced); returns the frames queued for it meanwhile.
   */
  release(room: string, id: string): string[];
  /** The cluster ended the member (its grace ran out while this node was unreachable): drop it here. */
  end(room: string, id: string): void;
  /** Answers an HTTP-transport request another node forwarded here (see `forward`). */
  answer(request: ForwardedRequest): Promise<ForwardedAnswer>;
}

/**
 * Rooms and delivery. The server talks to rooms only through this interface, so that a
 * store shared by several nodes (Redis pub/sub) can replace the in-memory default.
 * Frames are already encoded: the store never parses them.
 */
export interface RoomStore {
  /**
   * Adds `peer` to `room` with its sink; returns the other members, or why not. `token` is
   * a hash of the member's resume secret, for stores that can resume it on another node.
   */
  join(room: string, peer: PeerInfo, sink: Sink, token?: string): MaybePromise<JoinOutcome>;
  /** Removes a member; false if it was not there. */
  leave(room: string, id: string): MaybePromise<boolean>;
  /** Current members of `room`. */
  members(room: string): MaybePromise<PeerInfo[]>;
  /**
   * Delivers a frame to one member of `room` (its sink gets `relay` along with it); false
   * if no such member. True says the member exists, not that a relay frame was written.
   */
  sendTo(room: string, to: string, frame: string, relay?: RelayDelivery): MaybePromise<SendOutcome>;
  /** Delivers a frame to every member of `room` but `except`. */
  broadcast(room: string, frame: string, except?: string): MaybePromise<void>;
  /** Counts for metrics. */
  stats(): { rooms: number; peers: number };
  close(): MaybePromise<void>;
  /** Called once by the server that uses the store, before anything else. */
  bind?(host: RoomStoreHost): void;
  /** Takes over a member whose session another node held (`token` as in `join`). */
  claim?(room: string, id: string, token: string, sink: Sink): Promise<ClaimOutcome>;
  /** The member's resume token changed: a later `claim` must accept the new one. */
  setToken?(room: string, id: string, token: string): void;
  /** For `/healthz`: false while a shared backend is unreachable. */
  healthy?(): boolean;
  /** This node's id in the cluster (HTTP-transport session ids end with `.<nodeId>`). */
  readonly nodeId?: string;
  /**
   * Carries an HTTP-transport request to `node`, which holds its session, and resolves with
   * its answer; null when that node does not answer within `timeoutMs` (it is gone).
   */
  forward?(node: string, request: ForwardedRequest, timeoutMs: number): Promise<ForwardedAnswer | null>;
}

export interface RoomStoreLimits {
  maxPeersPerRoom: number;
  maxRooms: number;
}
