import type { Meta } from './types.js';
import type { Connection } from './connection.js';

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
  /** Bound once so the room store can hold it. */
  readonly sink = (frame: string): void => this.deliver(frame);

  constructor(
    readonly id: string,
    readonly room: string,
    readonly meta: Meta | undefined,
    public resumeToken: string,
    private readonly maxQueue: number,
  ) {
    // Signals are stamped by string concatenation: the data is serialized once.
    this.fromPrefix = `{"type":"signal","from":${JSON.stringify(id)},"data":`;
  }

  deliver(frame: string): void {
    if (this.conn) this.conn.send(frame);
    else if (this.queue.length < this.maxQueue) this.queue.push(frame);
  }

  /** Attaches a connection and flushes what was queued for it. */
  attach(conn: Connection): void {
    this.conn = conn;
    conn.session = this;
    for (const frame of this.queue.splice(0)) conn.send(frame);
  }
}
