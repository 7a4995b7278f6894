/**
 * The request handlers of the embedded TURN server (RFC 8656 sections 7, 9, 11 and 12, and
 * RFC 8489 Binding), called by the server's gate (turn/gate.ts) once a request passed the
 * rate limit, the codec and, except Binding, authentication. Each replaces node-turn's
 * lib/methods/*.js, whose defects are named at each one.
 */
import type { Allocation, AllocationTable } from './allocations.js';
import { encode, StunAttr, StunClass, UDP_PROTOCOL } from './codec.js';
import { type DataPath, sendToPeer } from './data-path.js';
import { canonicalIp } from './ip.js';
import type { TurnReply, TurnRequest } from './node-turn.js';
import type { PeerPolicy } from './policy.js';
import { channelCapExceeded, permissionCapExceeded, type TurnQuotas } from './quotas.js';

export interface HandlerContext extends DataPath {
  readonly allocations: AllocationTable;
  readonly policy: PeerPolicy;
  readonly quotas: Readonly<TurnQuotas>;
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
export function binding(request: TurnRequest): void {
  const reply = request.reply();
  reply.add('xor-mapped-address', request.mapped);
  reply.succeed();
}

/** RFC 8489 section 6.3.1.1: 420 with UNKNOWN-ATTRIBUTES listing the comprehension-required types not understood. */
export function rejectUnknown(request: TurnRequest, types: number[]): void {
  const list = Buffer.alloc(types.length * 2);
  types.forEach((t, i) => {
    list.writeUInt16BE(t, i * 2);
  });
  const code = Buffer.concat([Buffer.from([0, 0, 4, 20]), Buffer.from('Unknown Attribute')]);
  const out = encode(
    {
      method: request.method,
      cls: StunClass.error,
      transactionId: Buffer.from(request.transactionId, 'hex'),
      attributes: [
        { type: StunAttr.errorCode, value: code },
        { type: StunAttr.unknownAttributes, value: list },
      ],
    },
    { fingerprint: request.fingerprint },
  );
  request.send(out);
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
 * `ip`/`port`: the client's address as the socket reported it; `username`: the credential
 * the request authenticated with.
 */
export function allocate(ctx: HandlerContext, request: TurnRequest, reply: TurnReply, existing: Allocation | undefined, ip: string, port: number, username: string): void {
  if (existing) {
    if (existing.transactionId === request.transactionId) return allocateSuccess(ctx, existing, reply);
    return reply.fail(437, 'Allocation Mismatch');
  }
  const transport = request.get('requested-transport');
  if (transport === undefined) return reply.fail(400, 'Bad Request');
  if (transport !== UDP_PROTOCOL) return reply.fail(442, 'Unsupported Transport Protocol');
  // Reservations (RESERVATION-TOKEN, EVEN-PORT with R=1) are not offered: 508. EVEN-PORT with
  // R=0 gets an even relay port.
  const evenPort = request.get('even-port');
  if (request.get('reservation-token') !== undefined || evenPort === true) return reply.fail(508, 'Insufficient Capacity');
  // A retransmission that arrives while the relay port is being bound is dropped (the client
  // retransmits again and gets the stored answer).
  if (ctx.allocations.isPending(ip, port)) return reply.discard();
  const relayAddress = ctx.relayAddress ?? request.localAddress;
  void ctx.allocations.create(ip, port, request.mapped, username, request.transactionId, relayAddress, evenPort === false, lifetimeFor(ctx, request.get('lifetime'))).then((result) => {
    // RFC 8656 section 7.2: 486 when a quota (per user, per client IP, total) is reached.
    if (result === 'quota') {
      ctx.counters.refuse('quota');
      return reply.fail(486, 'Allocation Quota Reached');
    }
    if (typeof result === 'string') return reply.fail(508, 'Insufficient Capacity');
    ctx.allocated(ip);
    allocateSuccess(ctx, result, reply);
  });
}

function allocateSuccess(ctx: HandlerContext, allocation: Allocation, reply: TurnReply): void {
  reply.add('xor-relayed-address', allocation.relayed);
  reply.add('lifetime', Math.max(0, Math.round((allocation.expiresAt - ctx.clock.now()) / 1000)));
  reply.add('xor-mapped-address', allocation.mapped);
  reply.add('software', ctx.software);
  reply.sign();
  reply.succeed();
}

/**
 * RFC 8656 section 7.3. node-turn lib/methods/refresh.js read `server.defaultLifetime` and
 * `server.maxAllocateTimeout`, which do not exist: the reply said LIFETIME=0 and the NaN
 * timer deleted the allocation at once.
 */
export function refresh(ctx: HandlerContext, allocation: Allocation, request: TurnRequest, reply: TurnReply): void {
  const requested = request.get('lifetime');
  let lifetime = 0;
  if (requested === 0) {
    void ctx.allocations.delete(allocation);
  } else {
    lifetime = lifetimeFor(ctx, requested);
    ctx.allocations.setLifetime(allocation, lifetime);
  }
  reply.add('lifetime', lifetime);
  reply.add('software', ctx.software);
  reply.sign();
  reply.succeed();
}

/**
 * RFC 8656 section 9.2, with the peer address policy (403, section 21.3) and the permission
 * cap (turn/quotas.ts permissionCapExceeded: 508 Insufficient Capacity, nothing installed).
 */
export function createPermission(ctx: HandlerContext, allocation: Allocation, request: TurnRequest, reply: TurnReply): void {
  const relay = allocation.relay;
  const peers = request.peers().map((p) => p && canonicalIp(p.address));
  if (peers.length === 0 || peers.some((ip) => ip === undefined)) return reply.fail(400, 'Bad Request');
  const ips = peers as string[];
  if (ips.some((ip) => !ctx.policy.allows(ip))) {
    ctx.counters.refuse('forbidden-peer');
    return reply.fail(403, 'Forbidden');
  }
  const now = ctx.clock.now();
  if (permissionCapExceeded(relay, ips, now, ctx.quotas)) {
    ctx.counters.refuse('capacity');
    return reply.fail(508, 'Insufficient Capacity');
  }
  for (const ip of ips) relay.permit(ip, now);
  reply.add('software', ctx.software);
  reply.sign();
  reply.succeed();
}

/**
 * RFC 8656 section 11.2. node-turn lib/methods/channelBind.js resolved without
 * MESSAGE-INTEGRITY (RFC 8489 section 9.2.4: responses to authenticated requests carry it;
 * clients such as werift drop the reply) and never refused a peer (403). Beyond the channel
 * or permission cap (turn/quotas.ts channelCapExceeded): 508 Insufficient Capacity.
 */
export function channelBind(ctx: HandlerContext, allocation: Allocation, request: TurnRequest, reply: TurnReply): void {
  const relay = allocation.relay;
  const channel = request.get('channel-number');
  const peer = request.get('xor-peer-address');
  const ip = peer && canonicalIp(peer.address);
  // RFC 8656 section 12 narrows channels to 0x4000-0x4FFF, but RFC 5766 clients (coturn's
  // turnutils_uclient among them) use up to 0x7FFE: accept the RFC 5766 range.
  if (typeof channel !== 'number' || !peer || ip === undefined || channel < 0x4000 || channel > 0x7ffe) {
    return reply.fail(400, 'Bad Request');
  }
  const now = ctx.clock.now();
  if (!relay.canBind(channel, ip, peer.port, now)) return reply.fail(400, 'Bad Request');
  if (!ctx.policy.allows(ip)) {
    ctx.counters.refuse('forbidden-peer');
    return reply.fail(403, 'Forbidden');
  }
  if (channelCapExceeded(relay, channel, ip, now, ctx.quotas)) {
    ctx.counters.refuse('capacity');
    return reply.fail(508, 'Insufficient Capacity');
  }
  relay.bind(channel, ip, peer.port, now);
  reply.add('software', ctx.software);
  reply.sign();
  reply.succeed();
}

/**
 * RFC 8656 section 11.2, for Send indications the fast path (turn/codec.ts readSendIndication)
 * left to the full codec; Send to a peer without permission is dropped.
 */
export function sendIndication(ctx: HandlerContext, allocation: Allocation, request: TurnRequest): void {
  const dst = request.get('xor-peer-address');
  const data = request.get('data');
  const ip = dst && canonicalIp(dst.address);
  if (!dst || ip === undefined || !Buffer.isBuffer(data)) return;
  sendToPeer(ctx, allocation.relay, ip, dst.port, data);
}
