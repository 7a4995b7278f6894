import type { Connection } from './connection.js';
import { type RelayCounts, type RelayDelivery, relayPrefix } from './relay-frames.js';
import type { Meta } from './types.js';

/**
 * A peer's membership in a room. It outlives its connection for the resume grace period,
 * queueing (a bounded number of) frames addressed to it meanwhile.
 */
export class Session {
  conn: Connection | null = null;
  graceTimer: unknown = null;
  /** Frames that arrived while no connection was attached (or before `welcome` went out). */
  readonly queue: string[] = [];
  readonly fromPrefix: string;
  /** The start of every relay frame this peer sends (see relay-frames.ts). */
  readonly relayPrefix: string;
  /** Bound once so the room store can hold it. */
  readonly sink = (frame: string, relay?: RelayDelivery): void => this.deliver(frame, relay);

  constructor(
    readonly id: string,
    readonly room: string,
    public meta: Meta | undefined,
    public resumeToken: string,
    private readonly maxQueue: number,
    private readonly relayCounts?: RelayCounts,
  ) {
    // Signals and relay frames are stamped by string concatenation: the data is serialized once.
    this.fromPrefix = `{"type":"signal","from":${JSON.stringify(id)},"data":`;
    this.relayPrefix = relayPrefix(id);
  }

  deliver(frame: string, relay?: RelayDelivery): void {
    const conn = this.conn;
    // A connection the server is closing (a drain's 1012, a slow reader's 1013) stays
    // attached until its closing handshake ends, and ws discards what is sent meanwhile:
    // queue it for the resume instead (after a drain, the handover to the next node).
    if (conn?.open) {
      if (relay) conn.relay.deliver(frame, relay);
      else conn.send(frame);
      return;
    }
    // No connection: the resume grace period (or the moment between join and welcome).
    // Unreliable state would be stale by the time the peer is back; reliable relay frames
    // share the bounded queue with signals.
    if (relay?.kind !== 'unreliable' && this.queue.length < this.maxQueue) this.queue.push(frame);
    else if (relay && this.relayCounts) this.relayCounts.dropped.grace++;
  }

  /** Attaches a connection and flushes what was queued for it. */
  attach(conn: Connection): void {
    this.conn = conn;
    conn.session = this;
    for (const frame of this.queue.splice(0)) conn.send(frame);
  }
}
