/**
 * Runtime fixes for werift 0.24.x's SCTP partial reliability (RFC 3758) and data channel
 * establishment (RFC 8832). Upstream bugs, all still present in 0.25.2:
 *
 * 1. `RTCSctpTransport.dataChannelOpen` sets the DCEP channel type to 0x01/0x02 for a
 *    partially reliable channel, overwriting the 0x80 "unordered" bit (RFC 8832 §5.1), so an
 *    unordered channel is announced as ORDERED and the remote delivers it in order.
 *    It also writes the label/protocol lengths in UTF-16 units instead of bytes.
 * 2. `SCTP.maybeAbandon` tests `!!chunk.maxRetransmits`, false for `maxRetransmits: 0`, so
 *    such chunks are retransmitted forever (the channel behaves like TCP).
 * 3. `dataChannelFlush` computes the expiry as `Date.now() + maxPacketLifeTime / 1000`
 *    and `maybeAbandon` compares it with `Date.now() / 1000`: ms and s mixed, so
 *    `maxPacketLifeTime` never expires.
 * 4. `maybeAbandon` finds the chunk with `findIndex(v => v.type === chunk.type)`, i.e. the
 *    first DATA chunk in the queue rather than this one, and walks back to a LAST_FRAG
 *    instead of the FIRST_FRAG of the message (compare aiortc's `_maybe_abandon`), so it
 *    abandons the wrong message.
 *
 * The fixes replace those three methods on werift's prototypes with corrected copies. They
 * run at import time of `rallypoint/node` (a patch applied at install would not run for
 * users: npm 11 skips dependencies' install scripts). `applyWeriftFixes` is idempotent and
 * refuses to patch a werift whose methods are not the ones these copies were made from.
 */

// RFC 8832 §8.2.1 message types and RFC 8831 §8 payload protocol identifiers.
const DATA_CHANNEL_OPEN = 0x03;
const WEBRTC_DCEP = 50;
// RFC 8832 §5.1 channel types.
const CHANNEL_RELIABLE = 0x00;
const CHANNEL_PARTIAL_RELIABLE_REXMIT = 0x01;
const CHANNEL_PARTIAL_RELIABLE_TIMED = 0x02;
const CHANNEL_UNORDERED_BIT = 0x80;
// RFC 4960 §3.3.1 DATA chunk flags.
const SCTP_DATA_LAST_FRAG = 0x01;
const SCTP_DATA_FIRST_FRAG = 0x02;
const ASSOCIATION_ESTABLISHED = 4;

interface WChannel {
  id: number | undefined;
  label: string;
  protocol: string;
  ordered: boolean;
  maxRetransmits: number | null;
  maxPacketLifeTime: number | null;
  setId(id: number): void;
  addBufferedAmount(n: number): void;
}
interface WChunk {
  abandoned: boolean;
  retransmit: boolean;
  flags: number;
  sentCount: number;
  maxRetransmits: number | undefined;
  expiry: number | undefined;
}
interface WSctp {
  associationState: number;
  sentQueue: WChunk[];
  send(streamId: number, ppid: number, data: Buffer, opts: { ordered: boolean; expiry?: number | undefined; maxRetransmits?: number | undefined }): Promise<void>;
  maybeAbandon(chunk: WChunk): boolean;
}
interface WSctpTransport {
  sctp: WSctp;
  dataChannels: Record<number, WChannel>;
  dataChannelQueue: [WChannel, number, Buffer][];
  dataChannelId: number;
  dataChannelOpen(channel: WChannel): void;
  dataChannelFlush(): Promise<void>;
}

const FIXED = Symbol.for('rallypoint.werift-fixed');

/** Fix 1: the DCEP DATA_CHANNEL_OPEN message (RFC 8832 §5.1). */
function dataChannelOpen(this: WSctpTransport, channel: WChannel): void {
  patchSctp(this.sctp);
  if (channel.id !== undefined) {
    if (this.dataChannels[channel.id]) throw new Error(`Data channel with ID ${channel.id} already registered`);
    this.dataChannels[channel.id] = channel;
  }
  let channelType = CHANNEL_RELIABLE;
  let reliability = 0;
  if (channel.maxRetransmits !== null && channel.maxRetransmits !== undefined) {
    channelType = CHANNEL_PARTIAL_RELIABLE_REXMIT;
    reliability = channel.maxRetransmits;
  } else if (channel.maxPacketLifeTime !== null && channel.maxPacketLifeTime !== undefined) {
    channelType = CHANNEL_PARTIAL_RELIABLE_TIMED;
    reliability = channel.maxPacketLifeTime;
  }
  if (!channel.ordered) channelType |= CHANNEL_UNORDERED_BIT;
  const label = Buffer.from(channel.label, 'utf8');
  const protocol = Buffer.from(channel.protocol, 'utf8');
  const header = Buffer.alloc(12);
  header.writeUInt8(DATA_CHANNEL_OPEN, 0);
  header.writeUInt8(channelType, 1);
  header.writeUInt16BE(0, 2); // priority
  header.writeUInt32BE(reliability, 4);
  header.writeUInt16BE(label.length, 8);
  header.writeUInt16BE(protocol.length, 10);
  this.dataChannelQueue.push([channel, WEBRTC_DCEP, Buffer.concat([header, label, protocol])]);
  void this.dataChannelFlush();
}

/** Fix 3 (sender side): the partial-reliability expiry, in ms like `Date.now()`. */
async function dataChannelFlush(this: WSctpTransport): Promise<void> {
  patchSctp(this.sctp);
  if (this.sctp.associationState !== ASSOCIATION_ESTABLISHED) return;
  while (this.dataChannelQueue.length > 0) {
    const [channel, ppid, userData] = this.dataChannelQueue.shift() as [WChannel, number, Buffer];
    let streamId = channel.id;
    if (streamId === undefined) {
      streamId = this.dataChannelId;
      while (Object.keys(this.dataChannels).includes(streamId.toString())) streamId += 2;
      this.dataChannels[streamId] = channel;
      channel.setId(streamId);
    }
    if (ppid === WEBRTC_DCEP) {
      await this.sctp.send(streamId, ppid, userData, { ordered: true });
    } else {
      const lifetime = channel.maxPacketLifeTime;
      const expiry = lifetime !== null && lifetime !== undefined ? Date.now() + lifetime : undefined;
      const maxRetransmits = channel.maxRetransmits ?? undefined;
      await this.sctp.send(streamId, ppid, userData, { expiry, maxRetransmits, ordered: channel.ordered });
      channel.addBufferedAmount(-userData.length);
    }
  }
  this.dataChannelQueue = [];
}

/** Fixes 2, 3 and 4: RFC 3758 §3.5 abandonment of this chunk's whole message. */
function maybeAbandon(this: WSctp, chunk: WChunk): boolean {
  if (chunk.abandoned) return true;
  const byCount = chunk.maxRetransmits !== undefined && chunk.maxRetransmits !== null && chunk.sentCount > chunk.maxRetransmits;
  const byTime = chunk.expiry !== undefined && chunk.expiry !== null && chunk.expiry < Date.now();
  if (!byCount && !byTime) return false;
  const pos = this.sentQueue.indexOf(chunk);
  if (pos < 0) {
    chunk.abandoned = true;
    chunk.retransmit = false;
    return true;
  }
  for (let i = pos; i >= 0; i--) {
    const c = this.sentQueue[i] as WChunk;
    c.abandoned = true;
    c.retransmit = false;
    if (c.flags & SCTP_DATA_FIRST_FRAG) break;
  }
  for (let i = pos; i < this.sentQueue.length; i++) {
    const c = this.sentQueue[i] as WChunk;
    c.abandoned = true;
    c.retransmit = false;
    if (c.flags & SCTP_DATA_LAST_FRAG) break;
  }
  return true;
}

function patchSctp(sctp: WSctp | undefined): void {
  if (!sctp) return;
  const proto = Object.getPrototypeOf(sctp) as WSctp & { [FIXED]?: true };
  if (proto[FIXED]) return;
  if (!String(proto.maybeAbandon).includes('findIndex')) {
    throw new Error('werift SCTP.maybeAbandon is not the 0.24.x code rallypoint fixes; check peer/runtime/werift-fixes.ts against this werift version');
  }
  proto.maybeAbandon = maybeAbandon;
  proto[FIXED] = true;
}

/** Applies the fixes to werift's RTCSctpTransport (and, lazily, its SCTP association). */
export function applyWeriftFixes(RTCSctpTransport: { prototype: object }): void {
  const proto = RTCSctpTransport.prototype as WSctpTransport & { [FIXED]?: true };
  if (proto[FIXED]) return;
  if (!String(proto.dataChannelOpen).includes('channelType = 1') || !/maxPacketLifeTime \/ 1(e3|000)/.test(String(proto.dataChannelFlush))) {
    throw new Error('werift RTCSctpTransport is not the 0.24.x code rallypoint fixes; check peer/runtime/werift-fixes.ts against this werift version');
  }
  proto.dataChannelOpen = dataChannelOpen;
  proto.dataChannelFlush = dataChannelFlush;
  proto[FIXED] = true;
}
