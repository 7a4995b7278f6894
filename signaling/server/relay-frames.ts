/**
 * `relay` frames (PROTOCOL.md, Relay): the peer library's data fallback, data-channel traffic
 * carried over the signaling connection for peers whose ICE failed. Everything the server
 * does with them is here, in the order of a frame's life:
 *
 * 1. `admitRelay`: the data fallback switched off (`relay-disabled`), and the relay-frame
 *    rate limit: two token buckets per connection (`ConnectionRelay.take`), frames and bytes,
 *    apart from the signaling bucket so a game's data cannot use up its ICE restarts.
 * 2. `handleRelay`: addressed to another member of the sender's room, stamped with `from`
 *    (`relayPrefix`, `relayFrame`), handed to the room store with its `RelayDelivery`.
 * 3. `ConnectionRelay.deliver`: written to the recipient unless it is not keeping up:
 *    reliable frames dropped over `relayMaxBufferedBytes`, unreliable ones held latest-wins.
 * 4. `RelayCounts`: what /metrics reports (accepted by kind, bytes, drops by reason).
 *
 * The path allocates nothing per frame beyond the frame string (and, for an unreliable frame,
 * its latest key): counts are plain integers, the deliveries of reliable and held frames are
 * shared constants, and there is no promise unless the store answers with one.
 */
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { Limits, RelayMessage } from '../protocol/index.js';
import type { Connection } from './connection.js';
import type { HandlerContext } from './handlers.js';
import type { Session } from './session.js';
import { TokenBucket } from './token-bucket.js';

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

/** Why a valid relay frame of a joined peer was not delivered (`rallypoint_relay_dropped_total{reason}`). */
export const RELAY_DROP_REASONS = ['rate', 'congested', 'no-peer', 'grace', 'disabled'] as const;
export type RelayDropReason = (typeof RELAY_DROP_REASONS)[number];

/**
 * Relay counts as plain integers, bumped on the relay path (prom-client hashes its label
 * object on every inc()) and handed to the counters when /metrics is scraped.
 */
export class RelayCounts {
  /** Frames accepted for delivery, by kind: within limits and addressed to a member of the room. */
  readonly messages = { reliable: 0, unreliable: 0 };
  /** Bytes of those frames as received. */
  bytes = 0;
  readonly dropped: Record<RelayDropReason, number> = { rate: 0, congested: 0, 'no-peer': 0, grace: 0, disabled: 0 };
}

type RelayLimits = Pick<Limits, 'relayMessagesPerSecond' | 'relayMessageBurst' | 'relayBytesPerSecond' | 'relayBytesBurst' | 'relayLatestAboveBytes' | 'relayLatestSlots' | 'relayMaxBufferedBytes'>;

/** The relay limits a `welcome` announces, so the client can pace itself below them; all 0: the data fallback is off. */
export function welcomeRelayLimits(limits: RelayLimits, enabled: boolean): Pick<RelayLimits, 'relayMessagesPerSecond' | 'relayMessageBurst' | 'relayBytesPerSecond' | 'relayBytesBurst'> {
  return {
    relayMessagesPerSecond: enabled ? limits.relayMessagesPerSecond : 0,
    relayMessageBurst: enabled ? limits.relayMessageBurst : 0,
    relayBytesPerSecond: enabled ? limits.relayBytesPerSecond : 0,
    relayBytesBurst: enabled ? limits.relayBytesBurst : 0,
  };
}

/**
 * The relay frame's own checks that do not depend on the room: the data fallback switched
 * off, and the relay-frame rate limit. Valid relay frames pay here instead of the signaling
 * bucket. Unreliable frames are never answered with an error for these (at 30 Hz that is
 * noise): they are dropped and counted; the first one on a server with the data fallback off
 * is still told, once per connection, so a client learns why.
 */
export function admitRelay(ctx: HandlerContext, conn: Connection, msg: RelayMessage, size: number, now: number): boolean {
  const counts = ctx.metrics.relay;
  const relay = conn.relay;
  if (!ctx.options.dataFallback) {
    counts.dropped.disabled++;
    if (msg.unreliable && relay.disabledTold) return false;
    relay.disabledTold = true;
    ctx.sendError(conn, 'relay-disabled', 'relay is disabled on this server (welcome.limits.relayMessagesPerSecond is 0)', msg.ref);
    return false;
  }
  if (relay.take(now, size)) return true;
  counts.dropped.rate++;
  if (!msg.unreliable) {
    const { relayMessagesPerSecond, relayBytesPerSecond } = ctx.options.limits;
    ctx.sendError(conn, 'rate-limited', `more than ${relayMessagesPerSecond} relay messages/s or ${relayBytesPerSecond} relay bytes/s`, msg.ref);
  }
  return false;
}

const RELIABLE: RelayDelivery = { kind: 'reliable' };
/** What a held frame was: unreliable (the latest key no longer matters once it is written). */
const UNRELIABLE: RelayDelivery = { kind: 'unreliable' };

/**
 * Relays a `relay` frame (already admitted by `admitRelay`) to a peer of the sender's room,
 * `from` stamped. Not `async`: with a synchronous store (the in-memory default) the path
 * allocates no promise, as for signals. Unreliable frames that cannot be delivered are
 * dropped without an error (they come at 30 Hz; an error each would be noise): they are
 * counted in the metrics.
 */
export function handleRelay(ctx: HandlerContext, conn: Connection, msg: RelayMessage, size: number): Promise<void> | void {
  const session = conn.session;
  if (!session) return ctx.sendError(conn, 'not-joined', 'join a room before relaying', msg.ref);
  if (msg.to === session.id) return relayNotDelivered(ctx, conn, session, msg);
  const delivery: RelayDelivery = msg.unreliable ? { kind: 'unreliable', latestKey: `${session.id} ${msg.channel}` } : RELIABLE;
  const delivered = ctx.store.sendTo(session.room, msg.to, relayFrame(session, msg), delivery);
  if (delivered === true) return relayed(ctx, msg, size);
  if (delivered === false || delivered === 'unavailable') return relayNotDelivered(ctx, conn, session, msg, delivered);
  return Promise.resolve(delivered).then((ok) => (ok === true ? relayed(ctx, msg, size) : relayNotDelivered(ctx, conn, session, msg, ok)));
}

/**
 * The start of every relay frame peer `id` sends, up to the channel name's opening quote:
 * made once per session, so a frame is stamped by string concatenation.
 */
export function relayPrefix(id: string): string {
  return `{"type":"relay","from":${JSON.stringify(id)},"channel":"`;
}

/**
 * The frame as the recipient gets it: known fields only, in a fixed order. The channel
 * name needs no escaping (its alphabet is [A-Za-z0-9_.-]); seq and ack are integers.
 */
function relayFrame(session: Session, msg: RelayMessage): string {
  let frame = `${session.relayPrefix}${msg.channel}"`;
  if (msg.data !== undefined) frame += `,"data":${JSON.stringify(msg.data)}`;
  if (msg.b64) frame += ',"b64":true';
  if (msg.seq !== undefined) frame += `,"seq":${msg.seq}`;
  if (msg.ack !== undefined) frame += `,"ack":${msg.ack}`;
  if (msg.more) frame += ',"more":true';
  if (msg.unreliable) frame += ',"unreliable":true';
  return `${frame}}`;
}

function relayed(ctx: HandlerContext, msg: RelayMessage, size: number): void {
  const counts = ctx.metrics.relay;
  if (msg.unreliable) counts.messages.unreliable++;
  else counts.messages.reliable++;
  counts.bytes += size;
}

function relayNotDelivered(ctx: HandlerContext, conn: Connection, session: Session, msg: RelayMessage, outcome: false | 'unavailable' = false): void {
  ctx.metrics.relay.dropped['no-peer']++;
  if (msg.unreliable) return;
  if (outcome === 'unavailable') return ctx.sendError(conn, 'unavailable', `cannot reach ${msg.to}'s node now; the reliable stream resends`, msg.ref);
  const why = msg.to === session.id ? 'cannot relay to yourself' : `no peer ${msg.to} in room ${session.room}`;
  ctx.sendError(conn, 'peer-not-found', why, msg.ref);
}

/**
 * The relay-frame state of one connection: its rate limit (for frames it sends), the
 * `relay-disabled` notice, and the unreliable frames held for it while it is congested
 * (for frames it receives).
 */
export class ConnectionRelay {
  /** This connection was told `relay-disabled` once (unreliable frames are not told again). */
  disabledTold = false;
  /** The relay-frame rate limit: frames and bytes, apart from the connection's signaling bucket. */
  private readonly messages: TokenBucket;
  private readonly bytes: TokenBucket;
  /**
   * Unreliable relay frames held while this client is congested, by latest key (sender and
   * channel): a newer frame replaces the held one. Written on the socket's next 'drain'.
   */
  private latest: Map<string, string> | null = null;

  constructor(
    private readonly conn: Connection,
    private readonly limits: RelayLimits,
    private readonly counts: RelayCounts,
    now: number,
  ) {
    this.messages = new TokenBucket(limits.relayMessagesPerSecond, limits.relayMessageBurst, now);
    this.bytes = new TokenBucket(limits.relayBytesPerSecond, limits.relayBytesBurst, now);
  }

  /** Takes one relay frame of `bytes` from both relay buckets, or from neither. */
  take(now: number, bytes: number): boolean {
    if (!this.messages.take(now)) return false;
    if (this.bytes.take(now, bytes)) return true;
    this.messages.refund();
    return false;
  }

  /** Unreliable relay frames held for this client right now. */
  get held(): number {
    return this.latest?.size ?? 0;
  }

  /**
   * Writes a relay frame to this client unless it is not keeping up (see RelayDelivery).
   * Reliable frames are dropped over `relayMaxBufferedBytes` waiting: the peer library
   * retransmits what was not acknowledged, and a reader that stalls must not grow the
   * server's memory. Unreliable frames over `relayLatestAboveBytes` are held, the newest
   * per latest key, and written when the socket drains, so stale game state never queues
   * behind new state, and what is held is bounded by `relayLatestSlots` frames.
   */
  deliver(frame: string, relay: RelayDelivery): void {
    const conn = this.conn;
    const ws = conn.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    const buffered = ws.bufferedAmount;
    if (relay.kind === 'reliable') {
      if (buffered > this.limits.relayMaxBufferedBytes) this.counts.dropped.congested++;
      else conn.send(frame, relay);
      return;
    }
    // While frames are held, newer ones must be held too, or a held older one would
    // overtake them at the drain. Stale state queues only behind what is not written yet:
    // bytes an HTTP transport's client has but has not acknowledged do not count (they are
    // delivered, only kept until the next poll confirms them).
    if (this.latest === null && (ws.unsentAmount ?? buffered) <= this.limits.relayLatestAboveBytes) return conn.send(frame, relay);
    const key = relay.latestKey;
    if (key === undefined) {
      this.counts.dropped.congested++;
      return;
    }
    if (this.latest === null) {
      const socket: Duplex | null = conn.socket();
      if (!socket) {
        // No drain to wait for.
        this.counts.dropped.congested++;
        return;
      }
      // Node emits 'drain' only after a write found the buffer at its high-water mark
      // (16 KiB): below that the client is keeping up, whatever relayLatestAboveBytes says.
      if (!socket.writableNeedDrain) return conn.send(frame, relay);
      this.latest = new Map();
      socket.once('drain', this.flush);
    }
    if (this.latest.has(key))
      this.counts.dropped.congested++; // the older one
    else if (this.latest.size >= this.limits.relayLatestSlots) {
      this.counts.dropped.congested++;
      return;
    }
    this.latest.set(key, frame);
  }

  /** Writes the held frames (the socket drained). Bound once: it is a 'drain' listener. */
  private readonly flush = (): void => {
    const held = this.latest;
    this.latest = null;
    if (held !== null) for (const frame of held.values()) this.conn.send(frame, UNRELIABLE);
  };
}
