/**
 * The request handlers of the embedded TURN server (RFC 8656 sections 7, 9, 11 and 12, and
 * RFC 8489 Binding), called by the server's gate (turn/server.ts) once a request passed the
 * rate limit, the codec and, except Binding, authentication. Each replaces node-turn's
 * lib/methods/*.js, whose defects are named at each one.
 */
import type { AllocationTable, Allocation } from './allocations.js';
import type { TurnCounters } from './metrics.js';
import type { NtAddress, NtMessage } from './node-turn.js';
import { mappedAddress, UDP_PROTOCOL } from './node-turn.js';
import type { PeerPolicy } from './policy.js';
import type { TurnQuotas } from './quotas.js';
import { canonicalIp } from './relay-state.js';
import { encode, StunAttr, StunClass } from './stun.js';
import { sendToPeer } from './data-path.js';

export interface HandlerContext {
  readonly allocations: AllocationTable;
  readonly policy: PeerPolicy;
  readonly quotas: Readonly<TurnQuotas>;
  readonly counters: TurnCounters;
  readonly software: string;
  /** Address relay sockets bind to; default: the address the request arrived on. */
  readonly relayAddress: string | undefined;
  /** Seconds (RFC 8656 section 3.8). */
  readonly defaultLifetime: number;
  readonly maxLifetime: number;
  /** Called with the client's IP when an Allocate created an allocation (the server gives back its rate-limit token). */
  readonly allocated: (ip: string) => void;
}

/** RFC 8489 section 7.3.1: Binding needs no authentication; the answer is the source address. */
export function binding(msg: NtMessage): void {
  const reply = msg.reply();
  reply.addAttribute('xor-mapped-address', mappedAddress(msg.transport.src));
  reply.resolve();
}

/** RFC 8489 section 6.3.1.1: 420 with UNKNOWN-ATTRIBUTES listing the comprehension-required types not understood. */
export function rejectUnknown(msg: NtMessage, types: number[]): void {
  const list = Buffer.alloc(types.length * 2);
  types.forEach((t, i) => list.writeUInt16BE(t, i * 2));
  const code = Buffer.concat([Buffer.from([0, 0, 4, 20]), Buffer.from('Unknown Attribute')]);
  const out = encode(
    {
      method: msg.method,
      cls: StunClass.error,
      transactionId: Buffer.from(msg.transactionID, 'hex'),
      attributes: [
        { type: StunAttr.errorCode, value: code },
        { type: StunAttr.unknownAttributes, value: list },
      ],
    },
    { fingerprint: msg.useFingerprint },
  );
  msg.transport.socket.send(out, msg.transport.src.port, msg.transport.src.address);
}

/** RFC 8656 sections 7.2 and 7.3: min(requested, max), but never below the default. */
function lifetimeFor(ctx: HandlerContext, requested: unknown): number {
  if (typeof requested !== 'number') return ctx.defaultLifetime;
  return Math.max(ctx.defaultLifetime, Math.min(requested, ctx.maxLifetime));
}

/**
 * RFC 8656 section 7.2. node-turn's allocate read the LIFETIME attribute under the misspelt
 * name 'liftetime' (lib/methods/allocate.js), so a requested lifetime was ignored; its
 * dispatcher never looked up the allocation for Allocate requests, so a second Allocate on
 * the same 5-tuple replaced the first allocation and leaked its relay socket.
 * `ip`/`port`: the client's address as the socket reported it.
 */
export function allocate(ctx: HandlerContext, msg: NtMessage, reply: NtMessage, existing: Allocation | undefined, ip: string, port: number): void {
  if (existing) {
    if (existing.transactionId === msg.transactionID) return allocateSuccess(ctx, existing, reply);
    return reply.reject(437, 'Allocation Mismatch');
  }
  const transport = msg.getAttribute('requested-transport');
  if (transport === undefined) return reply.reject(400, 'Bad Request');
  if (transport !== UDP_PROTOCOL) return reply.reject(442, 'Unsupported Transport Protocol');
  // Reservations (RESERVATION-TOKEN, EVEN-PORT with R=1) are not offered: 508. EVEN-PORT with
  // R=0 gets an even relay port.
  const evenPort = msg.getAttribute('even-port');
  if (msg.getAttribute('reservation-token') !== undefined || evenPort === true) return reply.reject(508, 'Insufficient Capacity');
  // A retransmission that arrives while the relay port is being bound is dropped (the client
  // retransmits again and gets the stored answer).
  if (ctx.allocations.isPending(ip, port)) return reply.discard();
  const username = msg.user?.username ?? '';
  const relayAddress = ctx.relayAddress ?? msg.transport.dst.address;
  void ctx.allocations
    .create(ip, port, mappedAddress(msg.transport.src), username, msg.transactionID, relayAddress, evenPort === false, lifetimeFor(ctx, msg.getAttribute('lifetime')))
    .then((result) => {
      // RFC 8656 section 7.2: 486 when a quota (per user, per client IP, total) is reached.
      if (result === 'quota') {
        ctx.counters.refuse('quota');
        return reply.reject(486, 'Allocation Quota Reached');
      }
      if (typeof result === 'string') return reply.reject(508, 'Insufficient Capacity');
      ctx.allocated(ip);
      allocateSuccess(ctx, result, reply);
    });
}

function allocateSuccess(ctx: HandlerContext, allocation: Allocation, reply: NtMessage): void {
  reply.addAttribute('xor-relayed-address', allocation.relayed);
  reply.addAttribute('lifetime', Math.max(0, Math.round((allocation.expiresAt - Date.now()) / 1000)));
  reply.addAttribute('xor-mapped-address', allocation.mapped);
  reply.addAttribute('software', ctx.software);
  reply.addAttribute('message-integrity');
  reply.resolve();
}

/**
 * RFC 8656 section 7.3. node-turn lib/methods/refresh.js read `server.defaultLifetime` and
 * `server.maxAllocateTimeout`, which do not exist: the reply said LIFETIME=0 and the NaN
 * timer deleted the allocation at once.
 */
export function refresh(ctx: HandlerContext, allocation: Allocation, msg: NtMessage, reply: NtMessage): void {
  const requested = msg.getAttribute('lifetime');
  let lifetime = 0;
  if (requested === 0) {
    void ctx.allocations.delete(allocation);
  } else {
    lifetime = lifetimeFor(ctx, requested);
    ctx.allocations.setLifetime(allocation, lifetime);
  }
  reply.addAttribute('lifetime', lifetime);
  reply.addAttribute('software', ctx.software);
  reply.addAttribute('message-integrity');
  reply.resolve();
}

/**
 * RFC 8656 section 9.2, with the peer address policy (403, section 21.3) and the caps of
 * turn/quotas.ts: more than `maxPeersPerRequest` peers, or more live permissions than
 * `maxPermissionsPerAllocation` after the request, get 508 Insufficient Capacity and install
 * nothing (the request is all or nothing, section 9.2).
 */
export function createPermission(ctx: HandlerContext, allocation: Allocation, msg: NtMessage, reply: NtMessage): void {
  const relay = allocation.relay;
  const peers = (msg.getAttributes('xor-peer-address') as (NtAddress | undefined)[]).map((p) => p && canonicalIp(p.address));
  if (peers.length === 0 || peers.some((ip) => ip === undefined)) return reply.reject(400, 'Bad Request');
  const ips = peers as string[];
  if (ips.some((ip) => !ctx.policy.allows(ip))) {
    ctx.counters.refuse('forbidden-peer');
    return reply.reject(403, 'Forbidden');
  }
  const now = Date.now();
  if (ips.length > ctx.quotas.maxPeersPerRequest || relay.permissionsFull(ips, now, ctx.quotas.maxPermissionsPerAllocation)) {
    ctx.counters.refuse('capacity');
    return reply.reject(508, 'Insufficient Capacity');
  }
  for (const ip of ips) relay.permit(ip, now);
  reply.addAttribute('software', ctx.software);
  reply.addAttribute('message-integrity');
  reply.resolve();
}

/**
 * RFC 8656 section 11.2. node-turn lib/methods/channelBind.js resolved without
 * MESSAGE-INTEGRITY (RFC 8489 section 9.2.4: responses to authenticated requests carry it;
 * clients such as werift drop the reply) and never refused a peer (403). A new channel beyond
 * `maxChannelsPerAllocation`, or a new permission beyond `maxPermissionsPerAllocation`, gets
 * 508 Insufficient Capacity.
 */
export function channelBind(ctx: HandlerContext, allocation: Allocation, msg: NtMessage, reply: NtMessage): void {
  const relay = allocation.relay;
  const channel = msg.getAttribute('channel-number');
  const peer = msg.getAttribute('xor-peer-address') as NtAddress | undefined;
  const ip = peer && canonicalIp(peer.address);
  // RFC 8656 section 12 narrows channels to 0x4000-0x4FFF, but RFC 5766 clients (coturn's
  // turnutils_uclient among them) use up to 0x7FFE: accept the RFC 5766 range.
  if (typeof channel !== 'number' || !peer || ip === undefined || channel < 0x4000 || channel > 0x7ffe) {
    return reply.reject(400, 'Bad Request');
  }
  const now = Date.now();
  if (!relay.canBind(channel, ip, peer.port, now)) return reply.reject(400, 'Bad Request');
  if (!ctx.policy.allows(ip)) {
    ctx.counters.refuse('forbidden-peer');
    return reply.reject(403, 'Forbidden');
  }
  if (relay.channelsFull(channel, now, ctx.quotas.maxChannelsPerAllocation) || relay.permissionsFull([ip], now, ctx.quotas.maxPermissionsPerAllocation)) {
    ctx.counters.refuse('capacity');
    return reply.reject(508, 'Insufficient Capacity');
  }
  relay.bind(channel, ip, peer.port, now);
  reply.addAttribute('software', ctx.software);
  reply.addAttribute('message-integrity');
  reply.resolve();
}

/**
 * RFC 8656 section 11.2, for Send indications the fast path (turn/stun.ts readSendIndication)
 * left to the full codec; Send to a peer without permission is dropped.
 */
export function sendIndication(ctx: HandlerContext, allocation: Allocation, msg: NtMessage): void {
  const dst = msg.getAttribute('xor-peer-address') as NtAddress | undefined;
  const data = msg.getAttribute('data');
  const ip = dst && canonicalIp(dst.address);
  if (!dst || ip === undefined || !Buffer.isBuffer(data)) return;
  sendToPeer(allocation.relay, ip, dst.port, data, ctx.counters);
}
