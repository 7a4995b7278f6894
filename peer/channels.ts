import type { Channel, ChannelHooks } from './channel.js';
import { type Clock, systemClock } from './clock.js';
import { PeerError } from './errors.js';
import type { FlowLimits } from './flow.js';
import { ReliableChannel } from './reliable-stream.js';
import { UnreliableChannel } from './unreliable-stream.js';

/** Delivery of one named data channel (W3C RTCDataChannelInit, plus rallypoint options). */
export interface ChannelOptions {
  /** In-order delivery. Default true. */
  ordered?: boolean;
  /** Give up on a message after this many retransmissions (0: send once). */
  maxRetransmits?: number;
  /** Give up on a message after this many ms. */
  maxPacketLifeTime?: number;
  /**
   * Unreliable channels only: number messages and drop any that is older than the newest
   * received, so stale game state never overwrites newer state.
   */
  latest?: boolean;
  /** Send and receive JSON values (`JSON.stringify`/`JSON.parse`) instead of strings/bytes. */
  json?: boolean;
}

export interface ResolvedChannel {
  name: string;
  ordered: boolean;
  maxRetransmits: number | undefined;
  maxPacketLifeTime: number | undefined;
  latest: boolean;
  json: boolean;
  /**
   * Fully reliable (neither `maxRetransmits` nor `maxPacketLifeTime`): numbered, queued and
   * acknowledged (peer/reliable-stream.ts). False: partially reliable, drops instead of
   * queueing when congested (peer/unreliable-stream.ts).
   */
  reliable: boolean;
}

/** The presets every room has unless overridden: ordered+reliable, and game state. */
export const CHANNEL_PRESETS: Readonly<Record<'reliable' | 'unreliable', ChannelOptions>> = {
  reliable: { ordered: true },
  unreliable: { ordered: false, maxRetransmits: 0 },
};

/** Merges user channels over the presets and checks each (names must be usable DCEP labels). */
export function resolveChannels(channels: Record<string, ChannelOptions> = {}): ResolvedChannel[] {
  const all: Record<string, ChannelOptions> = { ...CHANNEL_PRESETS, ...channels };
  return Object.entries(all).map(([name, o]) => {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new PeerError('unknown-channel', `channel name "${name}" must be 1-64 of [A-Za-z0-9_.-]`);
    if (o.maxRetransmits !== undefined && o.maxPacketLifeTime !== undefined) {
      // W3C RTCPeerConnection.createDataChannel step 11: both set is a TypeError.
      throw new PeerError('unknown-channel', `channel "${name}": set maxRetransmits or maxPacketLifeTime, not both`);
    }
    for (const k of ['maxRetransmits', 'maxPacketLifeTime'] as const) {
      const v = o[k];
      if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v <= 65535)) throw new PeerError('unknown-channel', `channel "${name}": ${k} must be an integer 0-65535`);
    }
    const reliable = o.maxRetransmits === undefined && o.maxPacketLifeTime === undefined;
    if (o.latest && reliable) throw new PeerError('unknown-channel', `channel "${name}": latest mode needs an unreliable channel`);
    return {
      name,
      ordered: o.ordered ?? true,
      maxRetransmits: o.maxRetransmits,
      maxPacketLifeTime: o.maxPacketLifeTime,
      latest: o.latest ?? false,
      json: o.json ?? false,
      reliable,
    };
  });
}

/** The RTCDataChannelInit for a resolved channel. */
export function channelInit(c: ResolvedChannel): RTCDataChannelInit {
  const init: RTCDataChannelInit = { ordered: c.ordered };
  if (c.maxRetransmits !== undefined) init.maxRetransmits = c.maxRetransmits;
  if (c.maxPacketLifeTime !== undefined) init.maxPacketLifeTime = c.maxPacketLifeTime;
  return init;
}

/** The channel for a resolved configuration: a reliable or an unreliable stream. */
export function createChannel(config: ResolvedChannel, flow: FlowLimits, hooks: ChannelHooks, clock: Clock = systemClock): Channel {
  return new (config.reliable ? ReliableChannel : UnreliableChannel)(config, flow, hooks, clock);
}
