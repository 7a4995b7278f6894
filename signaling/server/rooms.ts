import type { PeerInfo } from '../protocol/index.js';

/** A result that may be ready now (in-memory) or later (a networked store such as Redis). */
export type MaybePromise<T> = T | Promise<T>;

/**
 * What a `relay` frame allows its recipient's node to do with it (plain data, so a
 * networked store can carry it along with the frame). Frames without one (signals,
 * room events) are always delivered, or queued during a resume grace period.
 */
export interface RelayDelivery {
  /**
   * `reliable`: dropped only when the recipient's send buffer is over
   * `relayMaxBufferedBytes`; queued during its resume grace. `unreliable`: held
   * latest-wins under `latestKey` while the recipient is congested; dropped during grace.
   */
  kind: 'reliable' | 'unreliable';
  /** For unreliable frames: a newer frame with the same key replaces a held older one. */
  latestKey?: string;
}

/** Delivers one encoded frame to a member wherever its connection lives. */
export type Sink = (frame: string, relay?: RelayDelivery) => void;

export type JoinOutcome = { ok: true; peers: PeerInfo[] } | { ok: false; code: 'room-full' | 'too-many-rooms' };

/**
 * Rooms and delivery. The server talks to rooms only through this interface, so that a
 * store shared by several nodes (Redis pub/sub) can replace the in-memory default.
 * Frames are already encoded: the store never parses them.
 */
export interface RoomStore {
  /** Adds `peer` to `room` with its sink; returns the other members, or why not. */
  join(room: string, peer: PeerInfo, sink: Sink): MaybePromise<JoinOutcome>;
  /** Removes a member; false if it was not there. */
  leave(room: string, id: string): MaybePromise<boolean>;
  /** Current members of `room`. */
  members(room: string): MaybePromise<PeerInfo[]>;
  /**
   * Delivers a frame to one member of `room` (its sink gets `relay` along with it); false
   * if no such member. True says the member exists, not that a relay frame was written.
   */
  sendTo(room: string, to: string, frame: string, relay?: RelayDelivery): MaybePromise<boolean>;
  /** Delivers a frame to every member of `room` but `except`. */
  broadcast(room: string, frame: string, except?: string): MaybePromise<void>;
  /** Counts for metrics. */
  stats(): { rooms: number; peers: number };
  close(): MaybePromise<void>;
}

export interface RoomStoreLimits {
  maxPeersPerRoom: number;
  maxRooms: number;
}
