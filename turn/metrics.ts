/**
 * Prometheus metrics of the embedded TURN server, on the registry it is given (default: its
 * own). The relay path only bumps plain integers in `TurnCounters`; prom-client sees them
 * when the registry is scraped (as signaling/server/metrics.ts does for bytes and messages).
 *
 * | metric                                          | type    | labels                          |
 * |-------------------------------------------------|---------|---------------------------------|
 * | rallypoint_turn_allocations                     | gauge   |                                 |
 * | rallypoint_turn_relayed_bytes_total             | counter | direction: to-peer, to-client   |
 * | rallypoint_turn_relayed_packets_total           | counter | direction: to-peer, to-client   |
 * | rallypoint_turn_refusals_total                  | counter | reason (see RefusalReason)      |
 * | rallypoint_turn_requests_total                  | counter | method (binding, allocate, ...) |
 *
 * Relayed bytes are application payload (without ChannelData or STUN framing).
 */
import { Counter, Gauge, Registry } from 'prom-client';

export type RelayDirection = 'to-peer' | 'to-client';

/**
 * Why a request or relayed datagram was refused:
 * - unauthorized: 401 to a request carrying MESSAGE-INTEGRITY (wrong, unknown or expired
 *   credentials; the first 401 challenge of a session is not counted);
 * - stale-nonce: 438; bad-request: 400 from authentication; wrong-credentials: 441;
 * - forbidden-peer: peer address policy (403 on CreatePermission/ChannelBind; a refused peer
 *   never gets a permission, so Send or ChannelData to it counts as no-permission);
 * - no-permission: relayed datagram dropped for lack of a permission or channel;
 * - quota: 486 Allocation Quota Reached;
 * - capacity: 508 for a request beyond the peers, permissions or channels one allocation
 *   may hold (turn/quotas.ts);
 * - rate-limited: request dropped by the token buckets (per source IP, global, or per
 *   allocation);
 * - malformed: request dropped unanswered by the codec (bad layout, FINGERPRINT not last or
 *   wrong, more than `maxAttributes` attributes);
 * - unknown-attribute: 420.
 */
export const REFUSAL_REASONS = [
  'unauthorized',
  'stale-nonce',
  'bad-request',
  'wrong-credentials',
  'forbidden-peer',
  'no-permission',
  'quota',
  'rate-limited',
  'unknown-attribute',
  'capacity',
  'malformed',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** Plain counters bumped by the server; cheap enough for every relayed datagram. */
export class TurnCounters {
  bytesToPeer = 0;
  bytesToClient = 0;
  packetsToPeer = 0;
  packetsToClient = 0;
  readonly refusals: Record<string, number> = {};
  readonly requests: Record<string, number> = {};

  toPeer(bytes: number): void {
    this.bytesToPeer += bytes;
    this.packetsToPeer++;
  }

  toClient(bytes: number): void {
    this.bytesToClient += bytes;
    this.packetsToClient++;
  }

  refuse(reason: RefusalReason): void {
    this.refusals[reason] = (this.refusals[reason] ?? 0) + 1;
  }

  request(method: string): void {
    this.requests[method] = (this.requests[method] ?? 0) + 1;
  }
}

/** Hands each counter's growth since the last scrape to a prom-client counter. */
function reportDeltas(counter: Counter<string>, label: string, counts: Record<string, number>, reported: Record<string, number>): void {
  for (const [value, n] of Object.entries(counts)) {
    const delta = n - (reported[value] ?? 0);
    if (delta > 0) counter.inc({ [label]: value }, delta);
    reported[value] = n;
  }
}

export class TurnMetrics {
  readonly registry: Registry;
  readonly allocations: Gauge;
  readonly relayedBytes: Counter<'direction'>;
  readonly relayedPackets: Counter<'direction'>;
  readonly refusals: Counter<'reason'>;
  readonly requests: Counter<'method'>;

  constructor(opts: { registry?: Registry; counters: TurnCounters; allocations: () => number }) {
    const registry = opts.registry ?? new Registry();
    this.registry = registry;
    const r = [registry];
    const c = opts.counters;
    const allocations = opts.allocations;
    this.allocations = new Gauge({
      name: 'rallypoint_turn_allocations',
      help: 'Live TURN allocations',
      registers: r,
      collect() {
        this.set(allocations());
      },
    });
    const reportedBytes: Record<string, number> = {};
    this.relayedBytes = new Counter({
      name: 'rallypoint_turn_relayed_bytes_total',
      help: 'Application bytes relayed by the TURN server, by direction',
      labelNames: ['direction'],
      registers: r,
      collect() {
        reportDeltas(this, 'direction', { 'to-peer': c.bytesToPeer, 'to-client': c.bytesToClient }, reportedBytes);
      },
    });
    const reportedPackets: Record<string, number> = {};
    this.relayedPackets = new Counter({
      name: 'rallypoint_turn_relayed_packets_total',
      help: 'Datagrams relayed by the TURN server, by direction',
      labelNames: ['direction'],
      registers: r,
      collect() {
        reportDeltas(this, 'direction', { 'to-peer': c.packetsToPeer, 'to-client': c.packetsToClient }, reportedPackets);
      },
    });
    const reportedRefusals: Record<string, number> = {};
    this.refusals = new Counter({
      name: 'rallypoint_turn_refusals_total',
      help: 'Refused TURN requests and dropped relay datagrams, by reason',
      labelNames: ['reason'],
      registers: r,
      collect() {
        reportDeltas(this, 'reason', c.refusals, reportedRefusals);
      },
    });
    const reportedRequests: Record<string, number> = {};
    this.requests = new Counter({
      name: 'rallypoint_turn_requests_total',
      help: 'STUN/TURN requests processed (after rate limiting), by method',
      labelNames: ['method'],
      registers: r,
      collect() {
        reportDeltas(this, 'method', c.requests, reportedRequests);
      },
    });
    for (const direction of ['to-peer', 'to-client']) {
      this.relayedBytes.inc({ direction }, 0);
      this.relayedPackets.inc({ direction }, 0);
    }
    for (const reason of REFUSAL_REASONS) this.refusals.inc({ reason }, 0);
  }
}
