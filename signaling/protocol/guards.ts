/**
 * The protocol's rules as plain predicates, for the browser bundle: the zod schemas in
 * schemas.ts are the specification (the server validates with them); these checks accept
 * exactly the same values (test/unit/guards.test.ts proves it on random and mutated
 * messages) at a fraction of zod's bundle size, which keeps the peer library inside its
 * 12 KB budget. Each returns null when the value is valid, else a short reason.
 */
import { ERROR_CODES, LEAVE_REASONS } from './codes.js';
import type { ClientMessage, ServerMessage } from './schemas.js';

type Obj = Record<string, unknown>;
const ROOM = /^[A-Za-z0-9_.-]+$/;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
/** zod's record: a plain object (prototype Object or null). */
const isRecord = (v: unknown): v is Obj => {
  if (!isObject(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
};
const str = (v: unknown, min: number, max: number): boolean => typeof v === 'string' && v.length >= min && v.length <= max;
const optStr = (v: unknown, max: number): boolean => v === undefined || str(v, 0, max);
const room = (v: unknown): boolean => str(v, 1, 64) && ROOM.test(v as string);
const peerId = (v: unknown): boolean => str(v, 1, 64);
const meta = (v: unknown): boolean => v === undefined || isRecord(v);
const peerInfo = (v: unknown): boolean => isObject(v) && peerId(v.id) && meta(v.meta);
const iceServer = (v: unknown): boolean =>
  isObject(v) && (typeof v.urls === 'string' || (Array.isArray(v.urls) && v.urls.every((u) => typeof u === 'string'))) && optStr(v.username, Infinity) && optStr(v.credential, Infinity);
const finite = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const channel = room; // the same rule: 1-64 of [A-Za-z0-9_.-]
const optTrue = (v: unknown): boolean => v === undefined || v === true;
const optU32 = (v: unknown): boolean => v === undefined || (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff);
/** The pass-through fields of relay frames, both directions. */
const relayFields = (v: Obj): string | null =>
  check(channel(v.channel), 'channel') ??
  check(v.data === undefined || typeof v.data === 'string', 'data') ??
  check(optU32(v.seq) && optU32(v.ack), 'seq/ack') ??
  check(optTrue(v.b64) && optTrue(v.more) && optTrue(v.unreliable), 'b64/more/unreliable');

function check(ok: boolean, what: string): string | null {
  return ok ? null : what;
}

/** Null when `v` is a valid client-to-server message. */
export function checkClientMessage(v: unknown): string | null {
  if (!isObject(v)) return 'message: not an object';
  if (!optStr(v.ref, 64)) return 'ref: string of at most 64';
  switch (v.type) {
    case 'join':
      return check(room(v.room), 'room: 1-64 of [A-Za-z0-9_.-]') ?? check(meta(v.meta), 'meta: object') ?? check(v.resume === undefined || str(v.resume, 1, 128), 'resume: string of 1-128');
    case 'signal':
      return check(peerId(v.to), 'to: string of 1-64') ?? check(v.data !== undefined, 'data: missing');
    case 'leave':
    case 'ping':
      return null;
    case 'relay':
      return check(peerId(v.to), 'to: string of 1-64') ?? relayFields(v);
    default:
      return 'type: unknown type';
  }
}

/** Null when `v` is a valid server-to-client message. */
export function checkServerMessage(v: unknown): string | null {
  if (!isObject(v)) return 'message: not an object';
  switch (v.type) {
    case 'welcome': {
      const resume = v.resume;
      return (
        check(peerId(v.id) && room(v.room), 'id/room') ??
        check(Array.isArray(v.peers) && v.peers.every(peerInfo), 'peers') ??
        check(Array.isArray(v.iceServers) && v.iceServers.every(iceServer), 'iceServers') ??
        check(isObject(resume) && typeof resume.token === 'string' && finite(resume.graceMs), 'resume') ??
        check(typeof v.resumed === 'boolean', 'resumed') ??
        check(isRecord(v.limits) && Object.values(v.limits).every(finite), 'limits')
      );
    }
    case 'peer-joined':
      return check(peerInfo(v.peer), 'peer');
    case 'peer-left':
      return check(peerId(v.id) && (LEAVE_REASONS as readonly unknown[]).includes(v.reason), 'id/reason');
    case 'signal':
      return check(peerId(v.from) && v.data !== undefined, 'from/data');
    case 'relay':
      return check(peerId(v.from), 'from') ?? relayFields(v);
    case 'error':
      return check((ERROR_CODES as readonly unknown[]).includes(v.code) && typeof v.message === 'string' && optStr(v.ref, Infinity), 'code/message/ref');
    case 'pong':
      return check(optStr(v.ref, Infinity), 'ref');
    default:
      return 'type: unknown type';
  }
}

export type { ClientMessage, ServerMessage };
