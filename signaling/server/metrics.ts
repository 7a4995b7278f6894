import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { CLOSE_CODES } from '../protocol/index.js';
import { RelayCounts } from './relay-frames.js';

/**
 * Close codes counted under their own `code` label: the ones RFC 6455 §7.4.1 and the IANA
 * registry define (1000-1015) and the project's own. A client chooses the code of a close it
 * starts (any of 3000-4999), so any other is counted as `other`: the label set stays bounded.
 */
const LABELLED_CLOSE_CODES: ReadonlySet<number> = new Set<number>([1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, ...Object.values(CLOSE_CODES)]);

/** The `code` label of `rallypoint_closes_total` for a close code. */
export function closeCodeLabel(code: number): string {
  return LABELLED_CLOSE_CODES.has(code) ? String(code) : 'other';
}

/**
 * The signaling server's Prometheus metrics, on a registry of its own so several servers
 * (or a host app's own metrics) can live in one process.
 */
export class SignalingMetrics {
  readonly registry: Registry;
  readonly connections: Gauge;
  readonly rooms: Gauge;
  readonly peers: Gauge;
  readonly messages: Counter<'type'>;
  /** Valid client messages by type since start; see `countMessage`. */
  private readonly messageCounts: Record<string, number> = {};
  readonly errors: Counter<'code'>;
  readonly refusals: Counter<'reason'>;
  readonly closes: Counter<'code'>;
  /** Connections closed with 1013 because their unsent backlog passed `maxBufferedBytes`. */
  readonly slowReaders: Counter;
  readonly upgradeSeconds: Histogram;
  readonly bytesIn: Counter;
  readonly bytesOut: Counter;
  readonly resumes: Counter<'result'>;
  readonly relay = new RelayCounts();

  /** Counts one valid client message (cheap: no prom-client work until a scrape). */
  countMessage(type: string): void {
    this.messageCounts[type] = (this.messageCounts[type] ?? 0) + 1;
  }

  constructor(opts: {
    registry?: Registry;
    defaultMetrics?: boolean;
    stats: () => { rooms: number; peers: number; connections: number };
    bytes: () => { in: number; out: number };
    /** Bytes waiting in send buffers and relay frames held, over the open connections. */
    backlog?: () => { buffered: number; held: number };
    /** Open HTTP-transport sessions (SSE or long-poll), counted among the connections too. */
    httpSessions?: () => number;
  }) {
    const registry = opts.registry ?? new Registry();
    this.registry = registry;
    const r = [registry];
    const stats = opts.stats;
    this.connections = new Gauge({
      name: 'rallypoint_connections',
      help: 'Open signaling connections (WebSocket or HTTP transport)',
      registers: r,
      collect() {
        this.set(stats().connections);
      },
    });
    const httpSessions = opts.httpSessions;
    if (httpSessions) {
      new Gauge({
        name: 'rallypoint_http_sessions',
        help: 'Open HTTP-transport sessions (Server-Sent Events or long-polling), also counted in rallypoint_connections',
        registers: r,
        collect() {
          this.set(httpSessions());
        },
      });
    }
    this.rooms = new Gauge({
      name: 'rallypoint_rooms',
      help: 'Rooms with at least one peer',
      registers: r,
      collect() {
        this.set(stats().rooms);
      },
    });
    this.peers = new Gauge({
      name: 'rallypoint_peers',
      help: 'Peers in rooms (including those inside their resume grace period)',
      registers: r,
      collect() {
        this.set(stats().peers);
      },
    });
    // Counted in plain integers on the relay path (prom-client hashes the label object on
    // every inc(): 2-3 % of relay CPU) and handed to the counter when it is scraped.
    const counts = this.messageCounts;
    const reported: Record<string, number> = {};
    this.messages = new Counter({
      name: 'rallypoint_messages_total',
      help: 'Valid client messages by type',
      labelNames: ['type'],
      registers: r,
      collect() {
        for (const [type, n] of Object.entries(counts)) {
          const delta = n - (reported[type] ?? 0);
          if (delta > 0) this.inc({ type }, delta);
          reported[type] = n;
        }
      },
    });
    this.errors = new Counter({ name: 'rallypoint_errors_total', help: 'Error frames sent, by code', labelNames: ['code'], registers: r });
    this.refusals = new Counter({ name: 'rallypoint_upgrade_refusals_total', help: 'Refused WebSocket upgrades, by reason', labelNames: ['reason'], registers: r });
    this.closes = new Counter({ name: 'rallypoint_closes_total', help: 'Closed connections, by WebSocket close code (codes nobody defined: other)', labelNames: ['code'], registers: r });
    this.slowReaders = new Counter({
      name: 'rallypoint_slow_reader_closes_total',
      help: 'Connections closed (1013) because what waited to be written to them passed maxBufferedBytes',
      registers: r,
    });
    this.upgradeSeconds = new Histogram({
      name: 'rallypoint_upgrade_duration_seconds',
      help: 'Time from upgrade request to accepted WebSocket, including auth',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: r,
    });
    // Byte totals are summed at scrape time (closed connections + open ones) rather than
    // counted per frame, which keeps the relay path free of metric updates.
    const bytes = opts.bytes;
    let reportedIn = 0;
    let reportedOut = 0;
    this.bytesIn = new Counter({
      name: 'rallypoint_bytes_in_total',
      help: 'Bytes received in WebSocket messages',
      registers: r,
      collect() {
        const now = bytes().in;
        if (now > reportedIn) this.inc(now - reportedIn);
        reportedIn = now;
      },
    });
    this.bytesOut = new Counter({
      name: 'rallypoint_bytes_out_total',
      help: 'Bytes sent in WebSocket messages',
      registers: r,
      collect() {
        const now = bytes().out;
        if (now > reportedOut) this.inc(now - reportedOut);
        reportedOut = now;
      },
    });
    this.resumes = new Counter({ name: 'rallypoint_resumes_total', help: 'Resume attempts, by result', labelNames: ['result'], registers: r });
    const relay = this.relay;
    countedAtScrape(r, 'rallypoint_relay_messages_total', 'Relay frames accepted for delivery (within limits, to a member of the room), by kind', 'kind', () => relay.messages);
    countedAtScrape(r, 'rallypoint_relay_bytes_total', 'Bytes of the relay frames accepted for delivery, as received', null, () => ({ '': relay.bytes }));
    countedAtScrape(r, 'rallypoint_relay_dropped_total', 'Relay frames of joined peers not delivered, by reason', 'reason', () => relay.dropped);
    const backlog = opts.backlog ?? (() => ({ buffered: 0, held: 0 }));
    new Gauge({
      name: 'rallypoint_send_buffered_bytes',
      help: 'Bytes queued for clients and not yet written to the network (WebSocket bufferedAmount, summed)',
      registers: r,
      collect() {
        this.set(backlog().buffered);
      },
    });
    new Gauge({
      name: 'rallypoint_relay_held_frames',
      help: 'Unreliable relay frames held for congested clients (the newest per sender and channel)',
      registers: r,
      collect() {
        this.set(backlog().held);
      },
    });
    if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'rallypoint_process_' });
  }
}

/**
 * A counter fed at scrape time from totals kept elsewhere: `read()` returns the totals by
 * label value (the key '' when `label` is null), and the counter is raised by what is new.
 */
function countedAtScrape(registers: Registry[], name: string, help: string, label: string | null, read: () => Record<string, number>): void {
  const reported: Record<string, number> = {};
  new Counter({
    name,
    help,
    labelNames: label === null ? [] : [label],
    registers,
    collect() {
      for (const [value, n] of Object.entries(read())) {
        // Also when 0: every label value is exported from the first scrape on.
        const delta = Math.max(0, n - (reported[value] ?? 0));
        if (label === null) this.inc(delta);
        else this.inc({ [label]: value }, delta);
        reported[value] = n;
      }
    },
  });
}
