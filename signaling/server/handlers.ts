import { createHash, randomBytes } from 'node:crypto';
import {
  CLOSE_CODES,
  type ErrorCode,
  encodeServerMessage,
  type IceServer,
  type JoinMessage,
  jsonDepthExceeds,
  type LeaveMessage,
  type LeaveReason,
  MAX_JSON_DEPTH,
  type PeerInfo,
  type PingMessage,
  type SignalMessage,
  utf8Length,
} from '../protocol/index.js';
import type { Connection } from './connection.js';
import type { SignalingMetrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import { welcomeRelayLimits } from './relay-frames.js';
import type { RoomStore } from './rooms.js';
import { Session } from './session.js';

/** What the message handlers need from the server. */
export interface HandlerContext {
  readonly options: ResolvedOptions;
  readonly store: RoomStore;
  readonly metrics: SignalingMetrics;
  /** Sessions by resume token. */
  readonly sessions: Map<string, Session>;
  sendError(conn: Connection, code: ErrorCode, message: string, ref?: string): void;
  iceServersFor(conn: Connection, peerId: string): IceServer[];
  clearGrace(session: Session): void;
  /** Keeps a session without a connection for the resume grace period, then ends it. */
  startGrace(session: Session, reason: LeaveReason): void;
  /** The connection joined (or resumed into) a room: its join deadline stops. */
  enteredRoom(conn: Connection): void;
  /** Closes a connection from the server side, terminating it if it has not finished closing within slowReaderCloseMs. */
  castOff(conn: Connection, code: number, reason: string): void;
  /** The connection left its room: its join deadline starts again. */
  leftRoom(conn: Connection): void;
}

export const newPeerId = (): string => randomBytes(9).toString('base64url');
/**
 * `<peer id>.<secret>`: the id lets any node of a cluster find the member to resume; the
 * secret alone proves the right to (its hash is all a shared store keeps).
 */
const newResumeToken = (id: string): string => `${id}.${randomBytes(24).toString('base64url')}`;
/** The hash a store keeps of a resume token's secret; '' for a token of another shape. */
export function tokenHash(token: string): string {
  const dot = token.lastIndexOf('.');
  return dot < 1
    ? ''
    : createHash('sha256')
        .update(token.slice(dot + 1))
        .digest('base64url');
}

function sendWelcome(ctx: HandlerContext, conn: Connection, session: Session, peers: { id: string; meta?: Record<string, unknown> }[], resumed: boolean): void {
  const { limits } = ctx.options;
  conn.send(
    encodeServerMessage({
      type: 'welcome',
      id: session.id,
      room: session.room,
      peers,
      iceServers: ctx.iceServersFor(conn, session.id),
      resume: { token: session.resumeToken, graceMs: limits.resumeGraceMs },
      resumed,
      limits: {
        maxMessageBytes: limits.maxMessageBytes,
        maxFrameBytes: limits.maxFrameBytes,
        maxMetaBytes: limits.maxMetaBytes,
        messagesPerSecond: limits.messagesPerSecond,
        messageBurst: limits.messageBurst,
        maxPeersPerRoom: limits.maxPeersPerRoom,
        resumeGraceMs: limits.resumeGraceMs,
        ...welcomeRelayLimits(limits, ctx.options.dataFallback),
        maxBufferedBytes: limits.maxBufferedBytes,
      },
    }),
  );
}

/** Takes over a session within its grace period (or from a connection that is still open). */
async function resume(ctx: HandlerContext, conn: Connection, session: Session, peers?: PeerInfo[]): Promise<void> {
  const previous = session.conn;
  if (previous && previous !== conn) {
    previous.session = null;
    session.conn = null;
    ctx.castOff(previous, CLOSE_CODES.replaced, 'session resumed elsewhere');
  }
  ctx.clearGrace(session);
  const oldToken = session.resumeToken;
  ctx.sessions.delete(session.resumeToken);
  session.resumeToken = newResumeToken(session.id);
  ctx.sessions.set(session.resumeToken, session);
  // Peers are re-read so the client learns who came and went while it was away.
  const members = peers ?? (await ctx.store.members(session.room));
  // The new connection went away while an async store answered. The session has no
  // connection and its grace timer was cleared above: re-arm it, or it stays in its room forever.
  // (Closing counts: a closing connection never gets the welcome.)
  if (!conn.open) return ctx.startGrace(session, 'closed');
  sendWelcome(
    ctx,
    conn,
    session,
    members.filter((p) => p.id !== session.id),
    true,
  );
  if (!conn.open) {
    // The welcome itself overflowed maxBufferedBytes (a non-reading client resuming with a
    // backlog): it was dropped and the connection is closing. The client never got the new
    // token, so the old one stays good, and the queue stays in the session (not attached
    // to a connection that can no longer write it) for the next resume.
    ctx.sessions.delete(session.resumeToken);
    session.resumeToken = oldToken;
    ctx.sessions.set(oldToken, session);
    return ctx.startGrace(session, 'closed');
  }
  session.attach(conn);
  ctx.enteredRoom(conn);
  ctx.store.setToken?.(session.room, session.id, tokenHash(session.resumeToken));
  ctx.metrics.resumes.inc({ result: 'resumed' });
}

/**
 * A resume token this node does not hold: with a cluster store, the session may live (or
 * have lived, on a node that died) on another node. The store moves it here.
 */
async function claim(ctx: HandlerContext, conn: Connection, msg: JoinMessage & { resume: string }): Promise<boolean> {
  const claim = ctx.store.claim;
  const id = msg.resume.slice(0, Math.max(0, msg.resume.lastIndexOf('.')));
  const hash = tokenHash(msg.resume);
  if (!claim || id === '' || hash === '') return false;
  const session = new Session(id, msg.room, undefined, msg.resume, ctx.options.limits.resumeQueueLength, ctx.metrics.relay);
  const outcome = await claim.call(ctx.store, msg.room, id, hash, session.sink);
  if (!outcome.ok) {
    if (outcome.code === 'unavailable') {
      ctx.sendError(conn, 'unavailable', 'the cluster store is unreachable; retry', msg.ref);
      ctx.castOff(conn, CLOSE_CODES.tooSlow, 'store unavailable');
      return true;
    }
    return false;
  }
  session.meta = outcome.peer.meta;
  // What waited in the cluster for it comes before what arrived during the claim.
  session.queue.unshift(...outcome.queued);
  if (!conn.open || conn.session) {
    // Gone while the store answered: it is ours now, in its grace period.
    ctx.sessions.set(session.resumeToken, session);
    ctx.startGrace(session, 'closed');
    return true;
  }
  ctx.sessions.set(session.resumeToken, session);
  await resume(ctx, conn, session, outcome.peers);
  return true;
}

export async function handleJoin(ctx: HandlerContext, conn: Connection, msg: JoinMessage): Promise<void> {
  if (conn.session) return ctx.sendError(conn, 'already-joined', `already joined room ${conn.session.room}; send leave first`, msg.ref);
  if (conn.grant.room !== undefined && conn.grant.room !== msg.room) {
    return ctx.sendError(conn, 'unauthorized', `token does not allow room ${msg.room}`, msg.ref);
  }
  if (msg.meta !== undefined && jsonDepthExceeds(msg.meta)) {
    return ctx.sendError(conn, 'bad-message', `meta nests deeper than ${MAX_JSON_DEPTH} levels`, msg.ref);
  }
  if (msg.meta !== undefined && utf8Length(JSON.stringify(msg.meta)) > ctx.options.limits.maxMetaBytes) {
    return ctx.sendError(conn, 'too-large', `meta exceeds ${ctx.options.limits.maxMetaBytes} bytes`, msg.ref);
  }
  if (msg.resume !== undefined) {
    const session = ctx.sessions.get(msg.resume);
    if (session && session.room === msg.room) return resume(ctx, conn, session);
    if (!session && (await claim(ctx, conn, { ...msg, resume: msg.resume }))) return;
    ctx.metrics.resumes.inc({ result: 'expired' });
  }
  const id = newPeerId();
  const session = new Session(id, msg.room, msg.meta, newResumeToken(id), ctx.options.limits.resumeQueueLength, ctx.metrics.relay);
  const outcome = await ctx.store.join(msg.room, msg.meta === undefined ? { id: session.id } : { id: session.id, meta: msg.meta }, session.sink, tokenHash(session.resumeToken));
  if (!outcome.ok) {
    if (outcome.code === 'unavailable') {
      // Not the client's fault and not final: it reconnects with backoff (PROTOCOL.md, Cluster).
      ctx.sendError(conn, 'unavailable', 'the cluster store is unreachable; retry', msg.ref);
      return ctx.castOff(conn, CLOSE_CODES.tooSlow, 'store unavailable');
    }
    const why = outcome.code === 'room-full' ? `room ${msg.room} has ${ctx.options.limits.maxPeersPerRoom} peers` : 'no more rooms on this server';
    return ctx.sendError(conn, outcome.code, why, msg.ref);
  }
  if (!conn.open || conn.session) {
    // The connection went away or started closing (the join deadline, a slow-reader close)
    // while an async store was answering, or joined twice: it never gets its welcome, so
    // the room must never hear of it (no ghost peer-joined).
    await ctx.store.leave(msg.room, session.id);
    return;
  }
  ctx.sessions.set(session.resumeToken, session);
  sendWelcome(ctx, conn, session, outcome.peers, false);
  if (!conn.open) {
    // The welcome itself overflowed maxBufferedBytes (a non-reading client rejoining with a
    // backlog): the client never got its id or token, so the room must not hear of it either.
    ctx.sessions.delete(session.resumeToken);
    await ctx.store.leave(msg.room, session.id);
    return;
  }
  session.attach(conn);
  ctx.enteredRoom(conn);
  await ctx.store.broadcast(msg.room, encodeServerMessage({ type: 'peer-joined', peer: msg.meta === undefined ? { id: session.id } : { id: session.id, meta: msg.meta } }), session.id);
}

/**
 * Relays a signal. Not `async`: with a synchronous store (the in-memory default) the relay
 * path allocates no promise; a promise is returned only when the store answers with one.
 * (`relay` frames have their handler in relay-frames.ts.)
 */
export function handleSignal(ctx: HandlerContext, conn: Connection, msg: SignalMessage): Promise<void> | void {
  const session = conn.session;
  if (!session) return ctx.sendError(conn, 'not-joined', 'join a room before sending signals', msg.ref);
  if (msg.to === session.id) return ctx.sendError(conn, 'peer-not-found', 'cannot signal yourself', msg.ref);
  if (jsonDepthExceeds(msg.data)) return ctx.sendError(conn, 'bad-message', `data nests deeper than ${MAX_JSON_DEPTH} levels`, msg.ref);
  const frame = `${session.fromPrefix}${JSON.stringify(msg.data)}}`;
  const delivered = ctx.store.sendTo(session.room, msg.to, frame);
  if (delivered === true) return;
  if (delivered === false || delivered === 'unavailable') return signalNotDelivered(ctx, conn, session, msg, delivered);
  return Promise.resolve(delivered).then((ok) => {
    if (ok !== true) signalNotDelivered(ctx, conn, session, msg, ok);
  });
}

function signalNotDelivered(ctx: HandlerContext, conn: Connection, session: Session, msg: SignalMessage, why: false | 'unavailable'): void {
  if (why === 'unavailable') return ctx.sendError(conn, 'unavailable', `cannot reach ${msg.to}'s node now; retry`, msg.ref);
  ctx.sendError(conn, 'peer-not-found', `no peer ${msg.to} in room ${session.room}`, msg.ref);
}

/**
 * Answers a client's liveness check (PROTOCOL.md, Liveness). Joined or not: the frame
 * already paid a signaling token, and a pong costs no more than the error it would get.
 */
export function handlePing(conn: Connection, msg: PingMessage): void {
  conn.send(encodeServerMessage(msg.ref === undefined ? { type: 'pong' } : { type: 'pong', ref: msg.ref }));
}

export async function handleLeave(ctx: HandlerContext, conn: Connection, msg: LeaveMessage): Promise<void> {
  const session = conn.session;
  if (!session) return ctx.sendError(conn, 'not-joined', 'not in a room', msg.ref);
  conn.session = null;
  session.conn = null;
  ctx.leftRoom(conn);
  await endSession(ctx, session, 'left');
}

/** Removes a session from its room for good and tells the others. */
export async function endSession(ctx: HandlerContext, session: Session, reason: LeaveReason): Promise<void> {
  ctx.clearGrace(session);
  ctx.sessions.delete(session.resumeToken);
  if (await ctx.store.leave(session.room, session.id)) {
    await ctx.store.broadcast(session.room, encodeServerMessage({ type: 'peer-left', id: session.id, reason }));
  }
}
