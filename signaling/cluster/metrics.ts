import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Why a frame for another node was not delivered (`rallypoint_cluster_dropped_total{reason}`). */
export const CLUSTER_DROP_REASONS = ['outbox-full', 'gone', 'inbox-full', 'unreliable-orphan'] as const;
export type ClusterDropReason = (typeof CLUSTER_DROP_REASONS)[number];

/** Plain integers on the hot path, handed to prom-client when /metrics is scraped. */
export class ClusterCounts {
  published = 0;
  received = 0;
  queued = 0;
  adopted = 0;
  renewals = 0;
  readonly dropped: Record<ClusterDropReason, number> = { 'outbox-full': 0, gone: 0, 'inbox-full': 0, 'unreliable-orphan': 0 };
}

export interface ClusterGauges {
  nodes(): number;
  degraded(): boolean;
  outbox(): number;
}

/** Adds a counter fed from a plain integer at scrape time. */
function fedCounter(registry: Registry, name: string, help: string, read: () => number): void {
  let reported = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const n = read();
      if (n > reported) this.inc(n - reported);
      reported = n;
    },
  });
}

/** Registers the cluster metrics on the server's registry; returns the RTT histogram. */
export function registerClusterMetrics(registry: Registry, counts: ClusterCounts, gauges: ClusterGauges): Histogram {
  fedCounter(registry, 'rallypoint_cluster_published_total', 'Messages this node published to Redis (frames for other nodes, room events, broadcasts)', () => counts.published);
  fedCounter(registry, 'rallypoint_cluster_received_total', 'Messages this node received from Redis channels', () => counts.received);
  fedCounter(registry, 'rallypoint_cluster_queued_total', 'Frames kept in a Redis inbox for a member whose node was gone', () => counts.queued);
  fedCounter(registry, 'rallypoint_cluster_adopted_nodes_total', 'Dead nodes whose members this node turned into orphans', () => counts.adopted);
  fedCounter(registry, 'rallypoint_cluster_subscription_renewals_total', 'Subscriptions renewed because this node stopped hearing its own keepalive', () => counts.renewals);
  const reported: Partial<Record<string, number>> = {};
  new Counter({
    name: 'rallypoint_cluster_dropped_total',
    help: 'Frames for other nodes not delivered, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const [reason, n] of Object.entries(counts.dropped)) {
        const delta = n - (reported[reason] ?? 0);
        if (delta > 0) this.inc({ reason }, delta);
        reported[reason] = n;
      }
    },
  });
  new Gauge({
    name: 'rallypoint_cluster_nodes',
    help: 'Live nodes in the cluster, as of the last heartbeat',
    registers: [registry],
    collect() {
      this.set(gauges.nodes());
    },
  });
  new Gauge({
    name: 'rallypoint_cluster_degraded',
    help: '1 while Redis is unreachable from this node (joins refused, frames for other nodes held)',
    registers: [registry],
    collect() {
      this.set(gauges.degraded() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'rallypoint_cluster_outbox_frames',
    help: 'Frames held while Redis is unreachable, sent when it is back',
    registers: [registry],
    collect() {
      this.set(gauges.outbox());
    },
  });
  return new Histogram({
    name: 'rallypoint_cluster_redis_rtt_seconds',
    help: 'Round trip of the node heartbeat to Redis',
    buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1],
    registers: [registry],
  });
}
