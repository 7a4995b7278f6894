import type { PeerInfo } from '../protocol/index.js';
import type { RelayDelivery } from '../server/rooms.js';

/**
 * Redis key names. Every key of a room carries `{r.<room>}` as its hash tag, so a room's
 * keys and channel share one slot (Redis Cluster, "Hash tags"); a node's keys carry
 * `{n.<node>}`, the cluster's own `{c}`. Room names and node ids never contain `{`, `}`
 * or `|` (their alphabets are [A-Za-z0-9_.-]), so no name can reach into another's keys.
 */
export class Keys {
  constructor(readonly prefix: string) {}
  members = (room: string): string => `${this.prefix}:{r.${room}}:m`;
  version = (room: string): string => `${this.prefix}:{r.${room}}:v`;
  roomChannel = (room: string): string => `${this.prefix}:{r.${room}}:c`;
  inbox = (room: string, id: string): string => `${this.prefix}:{r.${room}}:q:${id}`;
  nodeChannel = (node: string): string => `${this.prefix}:{n.${node}}:c`;
  nodeRooms = (node: string): string => `${this.prefix}:{n.${node}}:rooms`;
  nodes = (): string => `${this.prefix}:{c}:nodes`;
  epoch = (): string => `${this.prefix}:{c}:epoch`;
  rooms = (): string => `${this.prefix}:{c}:rooms`;
}

/** A member as Redis holds it: `node|tokenHash|graceDeadline|metaJson`. */
export interface MemberRecord {
  node: string;
  token: string;
  grace: string;
  peer: PeerInfo;
}

export function encodeRecord(node: string, token: string, peer: PeerInfo): string {
  return `${node}|${token}||${peer.meta === undefined ? '' : JSON.stringify(peer.meta)}`;
}

/** Splits off the first `n` `|`-separated fields; the rest (which may contain `|`) is last. */
export function fields(text: string, n: number): string[] | null {
  const out: string[] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const bar = text.indexOf('|', at);
    if (bar < 0) return null;
    out.push(text.slice(at, bar));
    at = bar + 1;
  }
  out.push(text.slice(at));
  return out;
}

export function decodeRecord(id: string, text: string): MemberRecord | null {
  const f = fields(text, 3);
  if (!f) return null;
  const [node = '', token = '', grace = '', meta = ''] = f;
  let peer: PeerInfo = { id };
  if (meta !== '') {
    try {
      peer = { id, meta: JSON.parse(meta) as Record<string, unknown> };
    } catch {
      return null;
    }
  }
  return { node, token, grace, peer };
}

/** HGETALL's reply (a flat array under RESP2, a map under RESP3) as id/record pairs. */
export function recordsOf(reply: unknown): Map<string, MemberRecord> {
  const out = new Map<string, MemberRecord>();
  const add = (id: unknown, rec: unknown): void => {
    const r = typeof id === 'string' && typeof rec === 'string' ? decodeRecord(id, rec) : null;
    if (r && typeof id === 'string') out.set(id, r);
  };
  if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) add(reply[i], reply[i + 1]);
  else if (reply instanceof Map) for (const [k, v] of reply) add(k, v);
  else if (reply && typeof reply === 'object') for (const [k, v] of Object.entries(reply)) add(k, v);
  return out;
}

/*
 * Node-channel messages (one per line of text, fields split by `|`, the frame last and
 * untouched: it is already the JSON the client gets, so it is never parsed or re-encoded
 * on the way):
 *   d|room|to|kind|latestKey|frame   a frame for one member (kind: s signal/event,
 *                                     r reliable relay, u unreliable relay)
 *   h|room|to|json                   the frames the old node queued for a resumed member
 *                                     (sent on every move away from it, even empty)
 *   p|room|to                        the member's inbox has frames: take them
 *   k|node                           the node's own keepalive (its subscription works)
 *   n|                               a probe, ignored: its receiver count says whether the
 *                                     node is alive (a claim then waits for its `h`)
 */
export function encodeDirected(room: string, to: string, frame: string, relay?: RelayDelivery): string {
  const kind = relay === undefined ? 's' : relay.kind === 'reliable' ? 'r' : 'u';
  return `d|${room}|${to}|${kind}|${relay?.latestKey ?? ''}|${frame}`;
}

export function decodeDelivery(kind: string, latestKey: string): RelayDelivery | undefined {
  if (kind === 'r') return RELIABLE;
  if (kind === 'u') return latestKey === '' ? { kind: 'unreliable' } : { kind: 'unreliable', latestKey };
  return undefined;
}

const RELIABLE: RelayDelivery = { kind: 'reliable' };
