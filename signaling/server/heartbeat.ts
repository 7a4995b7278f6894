import type { Clock } from './clock.js';
import type { Connection } from './connection.js';

/**
 * Liveness by WebSocket ping/pong (RFC 6455 §5.5.2-3). One timer for all connections:
 * each tick terminates those that did not answer the previous ping and pings the rest.
 * `terminate()`, not `close()`: a dead peer will never complete a closing handshake.
 */
export class Heartbeat {
  private timer: unknown = null;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly connections: () => Iterable<Connection>,
  ) {}

  start(): void {
    if (this.timer !== null) return;
    this.timer = this.clock.setInterval(() => this.tick(), this.intervalMs);
  }

  tick(): void {
    for (const conn of this.connections()) {
      if (!conn.alive) {
        conn.timedOut = true;
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      try {
        conn.ws.ping();
      } catch {
        // Socket already closing; its close event cleans up.
      }
    }
  }

  stop(): void {
    if (this.timer === null) return;
    this.clock.clearInterval(this.timer);
    this.timer = null;
  }
}
