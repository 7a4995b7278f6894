import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Histogram } from 'prom-client';
import { encodeServerMessage, type PeerInfo } from '../protocol/index.js';
import type { ClaimOutcome, ForwardedAnswer, ForwardedRequest, JoinOutcome, RelayDelivery, RoomStore, RoomStoreHost, SendOutcome, Sink } from '../server/rooms.js';
import { createLink, type RedisLink, type RedisTarget } from './link.js';
import { ClusterCounts, type ClusterDropReason, registerClusterMetrics } from './metrics.js';
import { CLAIM, HEARTBEAT, JOIN, LEAVE, NODE_LEAVE, ORPHAN, QUEUE, RENEW_LEASES, ROOM_LEASE, SET_TOKEN, SNAPSHOT, SYNC, TAKE } from './scripts.js';
import { decodeDelivery, decodeRecord, encodeDirected, encodeRecord, fields, Keys, type MemberRecord, recordsOf } from './wire.js';

export interface RedisRoomStoreOptions {
  /** `redis://host:port` of one Redis, `{ cluster: [urls] }` for a Redis Cluster, or a link of your own. */
  redis: string | RedisTarget | RedisLink;
  /** This node's id, unique in the cluster ([A-Za-z0-9_.-], at most 64). Default: random. */
  nodeId?: string;
  /** Prefix of every key and channel, so several deployments can share one Redis. Default `rp`. */
  prefix?: string;
  /** Node heartbeat period. Default 1 000 ms. */
  heartbeatMs?: number;
  /**
   * A node whose heartbeat is older than this is dead: its members become orphans (in
   * their resume grace) and can resume on any node. Default 3 000 ms, so a killed node is
   * noticed within nodeTtlMs + heartbeatMs (4 s).
   */
  nodeTtlMs?: number;
  /** Bytes of frames for other nodes held while Redis is unreachable. Default 8 MiB. */
  outboxMaxBytes?: number;
}

export const NODE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** A room with members on this node: its channel is subscribed and its membership cached. */
interface RoomState {
  /** Version of the last membership change applied (room events carry one). */
  ver: number;
  /** Events that arrived after subscribing and before the first snapshot. */
  early: string[] | null;
  members: Map<string, MemberRecord>;
  /** This node's members: their sinks and their records (to restore them after a Redis loss). */
  local: Map<string, { sink: Sink; record: string }>;
  /** Joins and claims in flight (the room is not left while they run). */
  pending: number;
  subscribed: Promise<void>;
}

interface Held {
  channel: string;
  payload: string;
  bytes: number;
  /** For frames to one member: what to do if nobody takes it. */
  to?: { room: string; id: string; node: string; frame: string; relay: RelayDelivery | undefined };
}

/** Room keys expire unless a node hosting the room renews them; renewed every KEY_RENEW_BEATS beats. */
const KEY_TTL_MS = 60_000;
const KEY_RENEW_BEATS = 10;
/** How long an emptied room's version counter stays (see LEAVE in scripts.ts). */
const EMPTY_ROOM_TTL_MS = 5_000;
/** After Redis lost its data, frames for members not yet restored by their nodes are retried this long. */
const RECOVERY_MS = 5_000;
/** Events held for one room while its first snapshot is on the way (a bound, never reached in practice). */
const MAX_EARLY = 10_000;
/** Heartbeats without hearing our own keepalive before the subscriptions are renewed. */
const KEEPALIVE_BEATS = 3;

const roomKey = (room: string, id: string): string => `${room}\n${id}`;

/**
 * Rooms and delivery shared by several signaling nodes through Redis (one server or a
 * Redis Cluster). Membership lives in Redis, changed only by scripts that announce each
 * change on the room's sharded channel; every node keeps the membership of the rooms it
 * hosts in memory from those announcements, so a frame for a member on another node costs
 * one SPUBLISH to that node's channel and nothing is asked of Redis on the way. See
 * signaling/PROTOCOL.md, "Cluster", for what holds when nodes or Redis fail.
 */
export class RedisRoomStore implements RoomStore {
  readonly nodeId: string;
  private readonly keys: Keys;
  private readonly link: RedisLink;
  private readonly heartbeatMs: number;
  private readonly nodeTtlMs: number;
  private readonly outboxMaxBytes: number;
  private host: RoomStoreHost | null = null;
  private log: Logger | null = null;
  private readonly rooms = new Map<string, RoomState>();
  private readonly counts = new ClusterCounts();
  private rtt: Histogram | null = null;
  private epoch: string | null = null;
  private registered = false;
  private isHealthy = false;
  private nodesSeen = 0;
  private beats = 0;
  private beating = false;
  private lastKeepalive = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly outbox: Held[] = [];
  private outboxBytes = 0;
  /** Members that left while Redis was unreachable: removed when it is back. */
  private readonly pendingLeaves = new Set<string>();
  /** Claims in flight waiting for the previous node's handover (`h`), by room and member. */
  private readonly handovers = new Map<string, (frames: string[]) => void>();
  /** Orphans this node adopted, ended when their grace runs out. */
  private readonly orphanTimers = new Map<string, NodeJS.Timeout>();
  /** Room snapshots to take again at the next heartbeat (after a reconnect or a Redis loss). */
  private resnapshot = false;
  /** Take every local peer's inbox when our own keepalive is heard again (after an outage). */
  private sweepInboxes = false;
  /** Until then, frames for members Redis does not know are retried (see RECOVERY_MS). */
  private recoveringUntil = 0;
  /** Until then, held frames wait: the other nodes are still putting their members back. */
  private flushAfter = 0;
  private hoard = false;
  private connected: Promise<void> | null = null;
  /** HTTP-transport requests forwarded to other nodes, waiting for their answer (see forward). */
  private readonly forwards = new Map<number, (answer: ForwardedAnswer | null) => void>();
  private forwardSeq = 0;
  /** The restore in progress (restores run one after another). */
  private restoring: Promise<void> | null = null;
  private closed = false;

  constructor(opts: RedisRoomStoreOptions) {
    this.nodeId = opts.nodeId ?? randomBytes(6).toString('base64url');
    if (!NODE_ID.test(this.nodeId)) throw new RangeError(`nodeId must match ${NODE_ID.source}`);
    this.keys = new Keys(opts.prefix ?? 'rp');
    this.heartbeatMs = opts.heartbeatMs ?? 1_000;
    this.nodeTtlMs = opts.nodeTtlMs ?? 3_000;
    this.outboxMaxBytes = opts.outboxMaxBytes ?? 8 * 1024 * 1024;
    if (!(this.heartbeatMs > 0 && this.nodeTtlMs > this.heartbeatMs)) throw new RangeError('need 0 < heartbeatMs < nodeTtlMs');
    const r = opts.redis;
    this.link = typeof r === 'string' ? createLink({ url: r }) : 'run' in r ? r : createLink(r);
    this.link.onError((err) => {
      if (this.isHealthy) this.log?.warn({ err: err.message }, 'redis connection lost');
      this.setHealthy(false);
    });
    this.link.onReconnect(() => {
      this.resnapshot = true;
      this.sweepInboxes = true;
      void this.beat();
    });
  }

  bind(host: RoomStoreHost): void {
    this.host = host;
    this.log = host.logger.child({ node: this.nodeId });
    this.rtt = registerClusterMetrics(host.registry, this.counts, {
      nodes: () => this.nodesSeen,
      degraded: () => !this.isHealthy,
      outbox: () => this.outbox.length,
    });
    void this.connect().catch(() => undefined);
  }

  /** Connects to Redis and registers the node (the first heartbeat). Rejects if Redis cannot be reached. */
  connect(): Promise<void> {
    this.connected ??= (async () => {
      // Beats from now on, even if Redis is not there yet: they fail (degraded) until it is.
      this.timer ??= setInterval(() => void this.beat(), this.heartbeatMs);
      this.timer.unref();
      await this.link.connect();
      await this.link.subscribe(this.keys.nodeChannel(this.nodeId), this.onNodeMessage);
      await this.beat();
      if (!this.isHealthy) throw new Error('redis heartbeat failed');
    })();
    return this.connected;
  }

  healthy(): boolean {
    return this.isHealthy;
  }

  private get limits(): RoomStoreHost['limits'] {
    if (!this.host) throw new Error('RedisRoomStore: pass it as the `store` option of a signaling server');
    return this.host.limits;
  }

  // ---- membership -------------------------------------------------------------------

  async join(room: string, peer: PeerInfo, sink: Sink, token = ''): Promise<JoinOutcome> {
    if (!this.isHealthy) return { ok: false, code: 'unavailable' };
    const st = this.enter(room);
    st.pending++;
    try {
      await Promise.all([st.subscribed, this.settled()]);
      const record = encodeRecord(this.nodeId, token, peer);
      const keys = [this.keys.members(room), this.keys.version(room), this.keys.roomChannel(room)];
      const { maxPeersPerRoom, maxRooms } = this.limits;
      let reply = (await this.link.run(JOIN, keys, [peer.id, record, maxPeersPerRoom, 0, KEY_TTL_MS])) as unknown[];
      if (reply[0] === 'new') {
        // A new room: take one of maxRooms' leases first (another slot, so another script).
        const leased = await this.link.run(ROOM_LEASE, [this.keys.rooms()], [room, maxRooms, this.leaseMs]);
        if (Number(leased) !== 1) return { ok: false, code: 'too-many-rooms' };
        reply = (await this.link.run(JOIN, keys, [peer.id, record, maxPeersPerRoom, 1, KEY_TTL_MS])) as unknown[];
      }
      if (reply[0] === 'full') return { ok: false, code: 'room-full' };
      if (reply[0] !== 'ok') return { ok: false, code: 'unavailable' };
      const others = this.keepUnrestored(st, recordsOf(reply[2]));
      others.delete(peer.id);
      st.local.set(peer.id, { sink, record });
      this.applySnapshot(st, Number(reply[1]), new Map([...others, [peer.id, { node: this.nodeId, token, grace: '', peer }]]));
      void this.link.command(this.keys.nodeRooms(this.nodeId), ['SADD', this.keys.nodeRooms(this.nodeId), room]).catch(this.warn);
      return { ok: true, peers: [...others.values()].map((r) => r.peer) };
    } catch (err) {
      this.log?.warn({ err: (err as Error).message, room }, 'join failed: redis unreachable');
      return { ok: false, code: 'unavailable' };
    } finally {
      st.pending--;
      this.maybeExit(room, st);
    }
  }

  async claim(room: string, id: string, token: string, sink: Sink): Promise<ClaimOutcome> {
    if (!this.isHealthy) return { ok: false, code: 'unavailable' };
    const st = this.enter(room);
    st.pending++;
    // Frames for the member may arrive as soon as the move is announced, before the reply.
    st.local.set(id, { sink, record: '' });
    // The previous node answers the move with what it queued for the member (`h`), possibly
    // before our reply arrives: listen first.
    let handover: string[] | null = null;
    let handedOver: () => void = () => undefined;
    const handed = new Promise<void>((resolve) => (handedOver = resolve));
    this.handovers.set(roomKey(room, id), (frames) => {
      handover = frames;
      handedOver();
    });
    try {
      await Promise.all([st.subscribed, this.settled()]);
      const reply = (await this.link.run(
        CLAIM,
        [this.keys.members(room), this.keys.version(room), this.keys.roomChannel(room), this.keys.inbox(room, id)],
        [id, token, this.nodeId, KEY_TTL_MS],
      )) as unknown[];
      if (reply[0] !== 'ok') {
        st.local.delete(id);
        return { ok: false, code: 'expired' };
      }
      const from = typeof reply[2] === 'string' ? reply[2] : '';
      // A previous node that is alive (a drain, a connection that moved) holds frames older
      // than any sent here since the move: wait for them (at most a heartbeat, in case it
      // froze) so they come first. A dead one (nobody on its channel) has none to give.
      if (handover === null && from !== '' && from !== this.nodeId && (await this.link.publish(this.keys.nodeChannel(from), 'n|').catch(() => 0)) > 0) {
        await Promise.race([handed, new Promise((r) => setTimeout(r, this.heartbeatMs).unref())]);
      }
      const records = this.keepUnrestored(st, recordsOf(reply[4]));
      const me = records.get(id);
      if (!me) throw new Error('claimed member missing from its room');
      st.local.set(id, { sink, record: encodeRecord(this.nodeId, token, me.peer) });
      this.applySnapshot(st, Number(reply[1]), records);
      this.cancelOrphan(room, id);
      void this.link.command(this.keys.nodeRooms(this.nodeId), ['SADD', this.keys.nodeRooms(this.nodeId), room]).catch(this.warn);
      const inbox = Array.isArray(reply[3]) ? reply[3].filter((f): f is string => typeof f === 'string') : [];
      const queued = [...inbox, ...((handover as string[] | null) ?? [])];
      const peers = [...records.values()].filter((r) => r.peer.id !== id).map((r) => r.peer);
      return { ok: true, peer: me.peer, peers, queued };
    } catch (err) {
      st.local.delete(id);
      this.log?.warn({ err: (err as Error).message, room }, 'resume failed: redis unreachable');
      return { ok: false, code: 'unavailable' };
    } finally {
      this.handovers.delete(roomKey(room, id));
      st.pending--;
      this.maybeExit(room, st);
    }
  }

  setToken(room: string, id: string, token: string): void {
    const entry = this.rooms.get(room)?.local.get(id);
    const me = this.rooms.get(room)?.members.get(id);
    if (entry && me) entry.record = encodeRecord(this.nodeId, token, me.peer);
    void this.link.run(SET_TOKEN, [this.keys.members(room)], [id, this.nodeId, token]).catch(this.warn);
  }

  async leave(room: string, id: string): Promise<boolean> {
    const st = this.rooms.get(room);
    const wasLocal = st?.local.delete(id) ?? false;
    if (st) this.maybeExit(room, st);
    try {
      const n = await this.link.run(LEAVE, [this.keys.members(room), this.keys.version(room), this.keys.roomChannel(room), this.keys.inbox(room, id)], [id, this.nodeId, '*', EMPTY_ROOM_TTL_MS]);
      return Number(n) === 1;
    } catch {
      // Removed when Redis is back; the room hears `peer-left` now (held with other frames).
      if (wasLocal) this.pendingLeaves.add(roomKey(room, id));
      return wasLocal;
    }
  }

  members(room: string): PeerInfo[] | Promise<PeerInfo[]> {
    const st = this.rooms.get(room);
    if (st && st.early === null) return [...st.members.values()].map((r) => r.peer);
    return this.link.run(SNAPSHOT, [this.keys.members(room), this.keys.version(room)], []).then((r) => [...recordsOf((r as unknown[])[1]).values()].map((m) => m.peer));
  }

  stats(): { rooms: number; peers: number } {
    let peers = 0;
    for (const st of this.rooms.values()) peers += st.local.size;
    return { rooms: this.rooms.size, peers };
  }

  private get leaseMs(): number {
    return this.nodeTtlMs + 2 * this.heartbeatMs;
  }

  private enter(room: string): RoomState {
    let st = this.rooms.get(room);
    if (!st) {
      const state: RoomState = { ver: -1, early: [], members: new Map(), local: new Map(), pending: 0, subscribed: Promise.resolve() };
      state.subscribed = this.link.subscribe(this.keys.roomChannel(room), (msg) => this.onRoomMessage(room, state, msg));
      this.rooms.set(room, state);
      st = state;
    }
    return st;
  }

  /** The last local member left and nothing is in flight: stop listening to the room. */
  private maybeExit(room: string, st: RoomState): void {
    if (st.local.size > 0 || st.pending > 0 || this.rooms.get(room) !== st) return;
    this.rooms.delete(room);
    void st.subscribed.then(() => this.link.unsubscribe(this.keys.roomChannel(room))).catch(this.warn);
    void this.link.command(this.keys.nodeRooms(this.nodeId), ['SREM', this.keys.nodeRooms(this.nodeId), room]).catch(this.warn);
  }

  /**
   * While Redis comes back empty, the other nodes are still putting their members back: one
   * that Redis lacks but this node knew is most likely not restored yet, not gone (dropping
   * it would answer frames for it with peer-not-found and hide it from a joiner's welcome).
   * The snapshot at the end of recovery (see beat) settles who is really gone.
   */
  private keepUnrestored(st: RoomState, records: Map<string, MemberRecord>): Map<string, MemberRecord> {
    if (Date.now() < this.recoveringUntil) for (const [id, rec] of st.members) if (!records.has(id)) records.set(id, rec);
    return records;
  }

  /** Until the other nodes have had a heartbeat to restore their members after Redis lost its data. */
  private async settled(): Promise<void> {
    const wait = this.flushAfter - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait).unref());
  }

  private applySnapshot(st: RoomState, ver: number, records: Map<string, MemberRecord>): void {
    if (st.early === null && ver <= st.ver) return;
    st.members = records;
    st.ver = ver;
    const early = st.early ?? [];
    st.early = null;
    for (const e of early) this.applyEvent(st, e, '');
  }

  // ---- delivery ---------------------------------------------------------------------

  sendTo(room: string, to: string, frame: string, relay?: RelayDelivery): SendOutcome {
    const st = this.rooms.get(room);
    const rec = st?.members.get(to);
    if (!st || !rec) return false;
    const local = st.local.get(to);
    if (local) {
      local.sink(frame, relay);
      return true;
    }
    return this.direct(room, to, rec.node, frame, relay);
  }

  broadcast(room: string, frame: string, except?: string): void {
    const st = this.rooms.get(room);
    let remote = st === undefined;
    if (st) {
      for (const [id, entry] of st.local) if (id !== except) entry.sink(frame);
      for (const rec of st.members.values()) if (rec.node !== this.nodeId && rec.node !== '') remote = true;
    }
    if (remote) this.publish(this.keys.roomChannel(room), `b|${this.nodeId}|${except ?? ''}|${frame}`);
  }

  /** A frame for a member on another node (or, node '', on none: an orphan). */
  private direct(room: string, to: string, node: string, frame: string, relay: RelayDelivery | undefined): SendOutcome {
    if (node === '') {
      if (relay?.kind === 'unreliable') this.drop('unreliable-orphan');
      else void this.keep(room, to, '', frame, relay);
      return true;
    }
    return this.publish(this.keys.nodeChannel(node), encodeDirected(room, to, frame, relay), { room, id: to, node, frame, relay });
  }

  /** Publishes now, or holds the message while Redis is unreachable; 'unavailable' when the hold is full. */
  private publish(channel: string, payload: string, to?: Held['to']): SendOutcome {
    if (!this.isHealthy || this.hoard || this.outbox.length > 0) return this.hold({ channel, payload, bytes: payload.length, ...(to ? { to } : {}) });
    this.counts.published++;
    this.link.publish(channel, payload).then(
      (n) => {
        if (n === 0 && to) this.undelivered(to);
      },
      () => void this.hold({ channel, payload, bytes: payload.length, ...(to ? { to } : {}) }),
    );
    return true;
  }

  private hold(h: Held): SendOutcome {
    if (this.outboxBytes + h.bytes > this.outboxMaxBytes) {
      this.drop('outbox-full');
      return 'unavailable';
    }
    this.outbox.push(h);
    this.outboxBytes += h.bytes;
    return true;
  }

  private flushOutbox(): void {
    const held = this.outbox.splice(0);
    this.outboxBytes = 0;
    for (const h of held) this.publish(h.channel, h.payload, h.to);
  }

  /** Nobody listened on the member's node channel: its node is gone (or it moved meanwhile). */
  private undelivered(to: NonNullable<Held['to']>): void {
    if (to.relay?.kind === 'unreliable') return this.drop('unreliable-orphan');
    void this.keep(to.room, to.id, to.node, to.frame, to.relay);
  }

  /** Keeps a frame in the member's Redis inbox for its resume, or sends it where the member went. */
  private async keep(room: string, id: string, tried: string, frame: string, relay: RelayDelivery | undefined): Promise<void> {
    try {
      const { resumeQueueLength, resumeGraceMs } = this.limits;
      const r = (await this.link.run(QUEUE, [this.keys.members(room), this.keys.inbox(room, id)], [id, tried, frame, resumeQueueLength, resumeGraceMs + this.nodeTtlMs])) as unknown[];
      const owner = typeof r[1] === 'string' ? r[1] : '';
      if (r[0] === 'moved') {
        if (owner === this.nodeId) this.rooms.get(room)?.local.get(id)?.sink(frame, relay);
        else this.publish(this.keys.nodeChannel(owner), encodeDirected(room, id, frame, relay));
      } else if (r[0] === 'queued') {
        this.counts.queued++;
        // The owner may be alive with a subscription that was down a moment: it takes the inbox.
        if (owner !== '') this.publish(this.keys.nodeChannel(owner), `p|${room}|${id}`);
      } else if (r[0] === 'gone' && Date.now() < this.recoveringUntil) {
        // Redis came back empty and the member's node has not put it back yet: try again.
        setTimeout(() => void this.keep(room, id, tried, frame, relay), this.heartbeatMs).unref();
      } else this.drop(r[0] === 'full' ? 'inbox-full' : 'gone');
    } catch {
      this.hold({ channel: this.keys.nodeChannel(tried), payload: encodeDirected(room, id, frame, relay), bytes: frame.length, to: { room, id, node: tried, frame, relay } });
    }
  }

  private drop(reason: ClusterDropReason): void {
    this.counts.dropped[reason]++;
  }

  /** Delivers what waits in a local member's inbox. */
  private async takeInbox(room: string, id: string): Promise<void> {
    try {
      const frames = (await this.link.run(TAKE, [this.keys.inbox(room, id)], [])) as unknown;
      const entry = this.rooms.get(room)?.local.get(id);
      if (Array.isArray(frames)) for (const f of frames) if (typeof f === 'string') entry?.sink(f);
    } catch (err) {
      this.warn(err);
    }
  }

  private readonly onNodeMessage = (msg: string): void => {
    this.counts.received++;
    switch (msg[0]) {
      case 'd': {
        const f = fields(msg, 5);
        if (!f) return;
        const [, room = '', to = '', kind = '', latestKey = '', frame = ''] = f;
        const relay = decodeDelivery(kind, latestKey);
        const st = this.rooms.get(room);
        const entry = st?.local.get(to);
        if (entry) return entry.sink(frame, relay);
        // Not here (any more): where the room says it is, else its inbox.
        const node = st?.members.get(to)?.node;
        if (node !== undefined && node !== this.nodeId && node !== '') this.publish(this.keys.nodeChannel(node), encodeDirected(room, to, frame, relay));
        else if (relay?.kind !== 'unreliable') void this.keep(room, to, this.nodeId, frame, relay);
        return;
      }
      case 'h': {
        const f = fields(msg, 3);
        if (!f) return;
        const [, room = '', to = '', json = '[]'] = f;
        const entry = this.rooms.get(room)?.local.get(to);
        let frames: unknown;
        try {
          frames = JSON.parse(json);
        } catch {
          return;
        }
        if (!Array.isArray(frames)) return;
        const strings = frames.filter((frame): frame is string => typeof frame === 'string');
        const waiting = this.handovers.get(roomKey(room, to));
        if (waiting) {
          this.handovers.delete(roomKey(room, to));
          return waiting(strings);
        }
        if (entry) for (const frame of strings) entry.sink(frame);
        return;
      }
      case 'p': {
        const f = fields(msg, 2);
        if (f?.[1] !== undefined && f[2] !== undefined && this.rooms.get(f[1])?.local.has(f[2])) void this.takeInbox(f[1], f[2]);
        return;
      }
      case 'f': {
        const f = fields(msg, 3);
        if (f) this.onForwarded(f[1] ?? '', f[2] ?? '', f[3] ?? '');
        return;
      }
      case 'F': {
        const f = fields(msg, 2);
        if (f) this.onAnswer(f[1] ?? '', f[2] ?? '');
        return;
      }
      case 'k':
        this.lastKeepalive = Date.now();
        if (this.sweepInboxes) {
          // Our channel delivers again. A frame queued for one of our peers while it did not
          // (its poke went nowhere) would wait in Redis for good: take every inbox once.
          this.sweepInboxes = false;
          for (const [room, st] of this.rooms) for (const id of st.local.keys()) void this.takeInbox(room, id);
        }
        return;
    }
  };

  private onRoomMessage(room: string, st: RoomState, msg: string): void {
    this.counts.received++;
    if (msg[0] === 'b') {
      const f = fields(msg, 3);
      if (!f || f[1] === this.nodeId) return;
      const except = f[2];
      const frame = f[3] ?? '';
      for (const [id, entry] of st.local) if (id !== except) entry.sink(frame);
      return;
    }
    if (st.early !== null) {
      if (st.early.length < MAX_EARLY) st.early.push(msg);
      return;
    }
    this.applyEvent(st, msg, room);
  }

  /** A membership change announced by a script (see scripts.ts); `room` is '' while replaying. */
  private applyEvent(st: RoomState, msg: string, room: string): void {
    const type = msg[0];
    const f = fields(msg, type === 'j' ? 3 : type === 'm' ? 4 : 2);
    if (!f) return;
    const ver = Number(f[1]);
    if (type === 'r') {
      if (room !== '') void this.snapshot(room, st);
      return;
    }
    if (!(ver > st.ver)) return;
    st.ver = ver;
    const id = f[2] ?? '';
    switch (type) {
      case 'j': {
        const rec = decodeRecord(id, f[3] ?? '');
        if (rec) st.members.set(id, rec);
        return;
      }
      case 'l':
        st.members.delete(id);
        if (st.local.delete(id)) this.host?.end(this.roomOf(st, room), id);
        return;
      case 'm': {
        const from = f[3] ?? '';
        const rec = decodeRecord(id, f[4] ?? '');
        if (!rec) return;
        st.members.set(id, rec);
        const held = rec.node !== this.nodeId && st.local.delete(id);
        if (held || (from === this.nodeId && rec.node !== this.nodeId)) {
          // Resumed on another node: hand over what was queued here; no peer-left. Always
          // answered, even with nothing: the new node waits for it (see claim).
          const r = this.roomOf(st, room);
          const frames = this.host?.release(r, id) ?? [];
          this.publish(this.keys.nodeChannel(rec.node), `h|${r}|${id}|${JSON.stringify(frames)}`);
        }
        return;
      }
      case 'o':
        for (const orphan of id.split(',')) {
          const rec = st.members.get(orphan);
          if (rec) rec.node = '';
          // This node was taken for dead while it still held the member: claim it back.
          if (st.local.has(orphan)) this.resnapshot = true;
        }
        return;
    }
  }

  private roomOf(st: RoomState, room: string): string {
    if (room !== '') return room;
    for (const [name, s] of this.rooms) if (s === st) return name;
    return '';
  }

  /**
   * Reads a room's membership again. `settle`: the end of a recovery from an empty Redis;
   * members no node put back vanished without a LEAVE (their node died during the outage),
   * so this node tells its own members they left.
   */
  private async snapshot(room: string, st: RoomState, settle = false): Promise<void> {
    try {
      const r = (await this.link.run(SNAPSHOT, [this.keys.members(room), this.keys.version(room)], [])) as unknown[];
      const members = this.keepUnrestored(st, recordsOf(r[1]));
      if (settle) {
        for (const id of st.members.keys()) {
          if (members.has(id) || st.local.has(id)) continue;
          const left = encodeServerMessage({ type: 'peer-left', id, reason: 'closed' });
          for (const entry of st.local.values()) entry.sink(left);
        }
      }
      st.members = members;
      st.ver = Number(r[0]);
      for (const [id, entry] of st.local)
        if (entry.record !== '' && !st.members.has(id)) st.members.set(id, decodeRecord(id, entry.record) ?? { node: this.nodeId, token: '', grace: '', peer: { id } });
    } catch (err) {
      this.warn(err);
    }
  }

  // ---- HTTP transports -----------------------------------------------------------------

  /**
   * An HTTP-transport request that a load balancer sent to this node while its session lives
   * on `node`: one SPUBLISH there, one back with the answer (a held poll answers when it has
   * frames). Null when nobody listens on that node's channel or it does not answer in time.
   */
  async forward(node: string, request: ForwardedRequest, timeoutMs: number): Promise<ForwardedAnswer | null> {
    if (!NODE_ID.test(node) || !this.isHealthy) return null;
    const id = ++this.forwardSeq;
    const answer = new Promise<ForwardedAnswer | null>((resolve) => {
      const timer = setTimeout(() => done(null), timeoutMs);
      timer.unref();
      const done = (a: ForwardedAnswer | null): void => {
        clearTimeout(timer);
        this.forwards.delete(id);
        resolve(a);
      };
      this.forwards.set(id, done);
    });
    this.counts.published++;
    const listeners = await this.link.publish(this.keys.nodeChannel(node), `f|${id}|${this.nodeId}|${JSON.stringify(request)}`).catch(() => 0);
    if (listeners === 0) this.forwards.get(id)?.(null);
    return answer;
  }

  private onForwarded(id: string, from: string, json: string): void {
    let request: ForwardedRequest;
    try {
      const r = JSON.parse(json) as Partial<ForwardedRequest>;
      if ((r.kind !== 'poll' && r.kind !== 'send') || typeof r.query !== 'string' || typeof r.body !== 'string' || !NODE_ID.test(from)) return;
      request = { kind: r.kind, query: r.query, body: r.body };
    } catch {
      return;
    }
    void this.host?.answer(request).then((a) => this.publish(this.keys.nodeChannel(from), `F|${id}|${JSON.stringify(a)}`));
  }

  private onAnswer(id: string, json: string): void {
    const done = this.forwards.get(Number(id));
    if (!done) return;
    try {
      const a = JSON.parse(json) as Partial<ForwardedAnswer>;
      done(typeof a.status === 'number' && typeof a.reason === 'string' && typeof a.body === 'string' ? { status: a.status, reason: a.reason, body: a.body } : null);
    } catch {
      done(null);
    }
  }

  // ---- nodes ------------------------------------------------------------------------

  private async beat(): Promise<void> {
    if (this.beating || this.closed) return;
    this.beating = true;
    const started = performance.now();
    try {
      // A connection that went silent (not closed) would hold the answer forever: after
      // nodeTtlMs without one, this node counts itself cut off (the others think it dead).
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('heartbeat unanswered')), this.nodeTtlMs);
      });
      const r = (await Promise.race([this.link.run(HEARTBEAT, [this.keys.nodes(), this.keys.epoch()], [this.nodeId, this.nodeTtlMs, randomBytes(8).toString('hex')]), late]).finally(() =>
        clearTimeout(timer),
      )) as unknown[];
      this.rtt?.observe((performance.now() - started) / 1000);
      const [epoch, present, , count, dead] = r;
      this.nodesSeen = Number(count);
      const lost = this.epoch !== null && epoch !== this.epoch;
      this.epoch = String(epoch);
      if (lost) {
        this.recoveringUntil = Date.now() + RECOVERY_MS;
        this.flushAfter = Date.now() + this.heartbeatMs + 500;
        // Members no node put back by then are gone (their node died during the outage).
        setTimeout(() => {
          if (!this.closed) for (const [room, st] of this.rooms) void this.snapshot(room, st, true);
        }, RECOVERY_MS + 1).unref();
      }
      // Not awaited: the heartbeat must go on while many rooms are restored (or this node
      // would be taken for dead meanwhile).
      if (lost || (this.registered && Number(present) !== 1) || this.resnapshot) void this.restoreOnce(lost);
      this.registered = true;
      this.beats++;
      await this.renew();
      this.publishKeepalive();
      this.setHealthy(true);
      if (Array.isArray(dead)) for (const d of dead) if (typeof d === 'string') void this.adopt(d);
    } catch (err) {
      if (this.isHealthy) this.log?.warn({ err: (err as Error).message }, 'redis heartbeat failed');
      this.setHealthy(false);
    } finally {
      this.beating = false;
    }
  }

  private setHealthy(ok: boolean): void {
    if (ok === this.isHealthy) return;
    this.isHealthy = ok;
    if (ok) {
      this.log?.info({ held: this.outbox.length }, 'redis reachable');
      const wait = this.flushAfter - Date.now();
      if (wait <= 0) this.flushOutbox();
      else {
        // Published now, these would reach nodes that have not subscribed again yet.
        this.hoard = true;
        setTimeout(() => {
          this.hoard = false;
          this.flushOutbox();
        }, wait).unref();
      }
    } else {
      this.resnapshot = true;
      this.sweepInboxes = true;
    }
  }

  /**
   * After a reconnect: remove members that left meanwhile, put this node's members back
   * (all of them when Redis lost its data, `recreate`; else only those still ours or
   * orphaned and not resumed elsewhere), read every room again and take the inboxes.
   */
  private restoreOnce(recreate: boolean): Promise<void> {
    this.resnapshot = false;
    const run = (this.restoring ?? Promise.resolve()).then(() => this.restore(recreate));
    const tail: Promise<void> = run
      .catch((err: unknown) => {
        this.warn(err);
        this.resnapshot = true; // again at the next heartbeat
      })
      .finally(() => {
        if (this.restoring === tail) this.restoring = null;
      });
    this.restoring = tail;
    return tail;
  }

  private async restore(recreate: boolean): Promise<void> {
    for (const key of [...this.pendingLeaves]) {
      const [room = '', id = ''] = key.split('\n');
      await this.link.run(LEAVE, [this.keys.members(room), this.keys.version(room), this.keys.roomChannel(room), this.keys.inbox(room, id)], [id, this.nodeId, '*', EMPTY_ROOM_TTL_MS]);
      this.pendingLeaves.delete(key);
    }
    if (recreate || !this.registered) this.log?.warn({ recreate }, "restoring this node's members in redis");
    for (const [room, st] of this.rooms) {
      const pairs: string[] = [];
      for (const [id, entry] of st.local) if (entry.record !== '') pairs.push(id, entry.record);
      if (pairs.length > 0) {
        const lost = (await this.link.run(SYNC, [this.keys.members(room), this.keys.version(room), this.keys.roomChannel(room)], [this.nodeId, KEY_TTL_MS, recreate ? 1 : 0, ...pairs])) as unknown;
        if (Array.isArray(lost)) {
          for (const id of lost) {
            if (typeof id !== 'string' || !st.local.delete(id)) continue;
            this.host?.end(room, id);
          }
        }
        await this.link.command(this.keys.nodeRooms(this.nodeId), ['SADD', this.keys.nodeRooms(this.nodeId), room]);
      }
      await this.snapshot(room, st);
      for (const id of st.local.keys()) void this.takeInbox(room, id);
      this.maybeExit(room, st);
    }
    if (recreate) {
      await this.link.run(RENEW_LEASES, [this.keys.rooms()], [this.leaseMs, ...this.rooms.keys()]);
    }
  }

  /** Renews this node's room leases, its room set, and (every few beats) its rooms' keys. */
  private async renew(): Promise<void> {
    const names = [...this.rooms.keys()];
    for (let i = 0; i < names.length || i === 0; i += 1000) {
      await this.link.run(RENEW_LEASES, [this.keys.rooms()], [this.leaseMs, ...names.slice(i, i + 1000)]);
    }
    const mine = this.keys.nodeRooms(this.nodeId);
    void this.link.command(mine, ['PEXPIRE', mine, String(this.nodeTtlMs * 10)]).catch(this.warn);
    if (this.beats % KEY_RENEW_BEATS !== 0) return;
    for (const room of names) {
      void this.link.command(this.keys.members(room), ['PEXPIRE', this.keys.members(room), String(KEY_TTL_MS)]).catch(this.warn);
      void this.link.command(this.keys.version(room), ['PEXPIRE', this.keys.version(room), String(KEY_TTL_MS)]).catch(this.warn);
      this.sweepOrphans(room);
    }
  }

  /** Orphans past their grace that no node ended (their adopter died too): end them. */
  private sweepOrphans(room: string): void {
    const st = this.rooms.get(room);
    if (!st) return;
    const now = Date.now();
    for (const [id, rec] of st.members) {
      if (rec.node === '' && rec.grace !== '' && Number(rec.grace) + 2 * this.nodeTtlMs < now && !this.orphanTimers.has(roomKey(room, id))) {
        void this.endOrphan(room, id, rec.grace);
      }
    }
  }

  /**
   * Our own keepalive on our own channel: a subscription that silently stopped delivering
   * (a proxy or a failover that kept the TCP connection but lost the subscription) shows
   * as keepalives that never arrive, and is renewed.
   */
  private publishKeepalive(): void {
    const now = Date.now();
    if (this.lastKeepalive === 0) this.lastKeepalive = now;
    else if (now - this.lastKeepalive > KEEPALIVE_BEATS * this.heartbeatMs) {
      this.counts.renewals++;
      this.lastKeepalive = now;
      this.log?.warn('own keepalive not heard: renewing subscriptions');
      void this.resubscribe();
    }
    this.link.publish(this.keys.nodeChannel(this.nodeId), `k|${this.nodeId}`).catch(this.warn);
  }

  private async resubscribe(): Promise<void> {
    try {
      await this.link.renew();
      this.resnapshot = true;
      this.sweepInboxes = true;
    } catch (err) {
      this.warn(err);
    }
  }

  /** A node's heartbeat lapsed and this node was the one told: its members become orphans. */
  private async adopt(dead: string): Promise<void> {
    const set = this.keys.nodeRooms(dead);
    try {
      const rooms = (await this.link.command(set, ['SMEMBERS', set])) as unknown;
      const grace = this.limits.resumeGraceMs;
      const deadline = String(Date.now() + grace);
      let orphans = 0;
      for (const room of Array.isArray(rooms) ? rooms : []) {
        if (typeof room !== 'string') continue;
        const ids = (await this.link.run(ORPHAN, [this.keys.members(room), this.keys.version(room), this.keys.roomChannel(room)], [dead, deadline])) as unknown;
        for (const id of Array.isArray(ids) ? ids : []) {
          if (typeof id !== 'string') continue;
          orphans++;
          const t = setTimeout(() => {
            this.orphanTimers.delete(roomKey(room, id));
            void this.endOrphan(room, id, deadline);
          }, grace);
          t.unref();
          this.orphanTimers.set(roomKey(room, id), t);
        }
      }
      await this.link.command(set, ['DEL', set]);
      this.counts.adopted++;
      this.log?.warn({ dead, orphans }, 'node heartbeat lapsed: its peers wait for resume');
    } catch (err) {
      this.warn(err);
    }
  }

  private cancelOrphan(room: string, id: string): void {
    const t = this.orphanTimers.get(roomKey(room, id));
    if (t) clearTimeout(t);
    this.orphanTimers.delete(roomKey(room, id));
  }

  /** An orphan's grace ran out without a resume: it leaves, and the room hears `peer-left`. */
  private async endOrphan(room: string, id: string, deadline: string): Promise<void> {
    try {
      const n = await this.link.run(LEAVE, [this.keys.members(room), this.keys.version(room), this.keys.roomChannel(room), this.keys.inbox(room, id)], [id, '', deadline, EMPTY_ROOM_TTL_MS]);
      if (Number(n) === 1) this.broadcast(room, encodeServerMessage({ type: 'peer-left', id, reason: 'closed' }));
    } catch (err) {
      this.warn(err);
    }
  }

  private readonly warn = (err: unknown): void => {
    this.log?.debug({ err: err instanceof Error ? err.message : String(err) }, 'redis command failed');
  };

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.restoring;
    for (const t of this.orphanTimers.values()) clearTimeout(t);
    this.orphanTimers.clear();
    if (this.isHealthy) {
      // A node that stops on purpose is not "dead": nobody has to adopt anything of it.
      const mine = this.keys.nodeRooms(this.nodeId);
      await Promise.allSettled([this.link.run(NODE_LEAVE, [this.keys.nodes()], [this.nodeId]), this.link.command(mine, ['DEL', mine])]);
    }
    this.rooms.clear();
    for (const done of [...this.forwards.values()]) done(null);
    await this.link.close();
  }
}
