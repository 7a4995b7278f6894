/**
 * The relay hot path (RFC 8656 sections 11 and 12): client ChannelData and Send indications
 * to peers, peer datagrams back as ChannelData or Data indications. No parsing beyond the few
 * bytes each needs, no node-turn objects, no allocation per datagram beyond the 4-byte
 * ChannelData header (a Data indication's head comes from turn/codec.ts dataIndicationHead).
 *
 * The peer policy is checked once, when CreatePermission or ChannelBind installs the
 * permission (403 otherwise), not per packet: it cost 0.9-4.3 µs a packet (BENCHMARKS.md,
 * "where the time goes"). A permission exists only for an allowed address, and PeerPolicy is
 * immutable, so this stays true for the permission's lifetime.
 */
import type dgram from 'node:dgram';
import type { Clock } from './clock.js';
import { dataIndicationHead, PADDING, type TransactionIdSource } from './codec.js';
import type { TurnCounters } from './metrics.js';
import type { RelayState } from './relay-state.js';

/** What the hot path needs from the server: its clock (permission and channel expiry), counters and transaction ids. */
export interface DataPath {
  readonly clock: Clock;
  readonly counters: TurnCounters;
  readonly transactionIds: TransactionIdSource;
}

/** RFC 8656 section 12.6: client ChannelData to the channel's peer. */
export function channelDataToPeer(path: DataPath, relay: RelayState, buf: Buffer): void {
  const length = buf.readUInt16BE(2);
  if (length > buf.length - 4) return;
  const now = path.clock.now();
  const channel = relay.channel(buf.readUInt16BE(0), now);
  if (!channel || !relay.permission(channel.address, now)) return path.counters.refuse('no-permission');
  relay.socket.send(buf.subarray(4, 4 + length), channel.port, channel.address);
  path.counters.toPeer(length);
}

/**
 * RFC 8656 section 11.2: the data of a Send indication to the peer, if permitted (a refused
 * peer never gets a permission, section 21.3). `ip` in canonical text (turn/ip.ts).
 */
export function sendToPeer(path: DataPath, relay: RelayState, ip: string, port: number, data: Buffer): void {
  if (!relay.permission(ip, path.clock.now())) return path.counters.refuse('no-permission');
  relay.socket.send(data, port, ip);
  path.counters.toPeer(data.length);
}

/**
 * RFC 8656 section 11.3 (a datagram from a peer; Data indication) and 12.7 (ChannelData
 * when a channel is bound to the peer).
 */
export function peerToClient(path: DataPath, relay: RelayState, data: Buffer, rinfo: dgram.RemoteInfo): void {
  if (!relay.live) return;
  const now = path.clock.now();
  const permission = relay.permission(rinfo.address, now);
  if (!permission) return path.counters.refuse('no-permission');
  path.counters.toClient(data.length);
  const pad = (4 - (data.length % 4)) % 4;
  const channel = relay.peerChannel(permission, rinfo.port, now);
  if (channel) {
    // ChannelData as a list of buffers: one sendmsg, the payload not copied. Padded to 4
    // bytes: optional over UDP (RFC 8656 section 12.5), kept so the wire does not change.
    const header = Buffer.allocUnsafe(4);
    header.writeUInt16BE(channel.number, 0);
    header.writeUInt16BE(data.length, 2);
    relay.listener.send(pad === 0 ? [header, data] : [header, data, PADDING[pad]!], relay.clientPort, relay.clientAddress);
    return;
  }
  // Built and sent synchronously: node-turn's message.data() took the transaction id from
  // the async crypto.randomBytes and reordered the indications (turn/transaction-ids.ts).
  const head = dataIndicationHead(permission.ip, rinfo.port, data.length, path.transactionIds);
  relay.listener.send(pad === 0 ? [head, data] : [head, data, PADDING[pad]!], relay.clientPort, relay.clientAddress);
}
