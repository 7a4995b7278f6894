import type { PeerInfo } from '../protocol/index.js';
import type { JoinOutcome, RelayDelivery, RoomStore, RoomStoreLimits, Sink } from './rooms.js';

interface Entry {
  peer: PeerInfo;
  sink: Sink;
}

/** The default room store: one process, everything synchronous. */
export class MemoryRoomStore implements RoomStore {
  private readonly rooms = new Map<string, Map<string, Entry>>();
  private peers = 0;

  constructor(private readonly limits: RoomStoreLimits) {}

  join(room: string, peer: PeerInfo, sink: Sink): JoinOutcome {
    let members = this.rooms.get(room);
    if (!members) {
      if (this.rooms.size >= this.limits.maxRooms) return { ok: false, code: 'too-many-rooms' };
      members = new Map();
      this.rooms.set(room, members);
    } else if (members.size >= this.limits.maxPeersPerRoom) {
      return { ok: false, code: 'room-full' };
    }
    const others = [...members.values()].map((e) => e.peer);
    if (!members.has(peer.id)) this.peers++;
    members.set(peer.id, { peer, sink });
    return { ok: true, peers: others };
  }

  leave(room: string, id: string): boolean {
    const members = this.rooms.get(room);
    if (!members?.delete(id)) return false;
    this.peers--;
    if (members.size === 0) this.rooms.delete(room);
    return true;
  }

  members(room: string): PeerInfo[] {
    const members = this.rooms.get(room);
    return members ? [...members.values()].map((e) => e.peer) : [];
  }

  sendTo(room: string, to: string, frame: string, relay?: RelayDelivery): boolean {
    const entry = this.rooms.get(room)?.get(to);
    if (!entry) return false;
    entry.sink(frame, relay);
    return true;
  }

  broadcast(room: string, frame: string, except?: string): void {
    const members = this.rooms.get(room);
    if (!members) return;
    for (const [id, entry] of members) if (id !== except) entry.sink(frame);
  }

  stats(): { rooms: number; peers: number } {
    return { rooms: this.rooms.size, peers: this.peers };
  }

  close(): void {
    this.rooms.clear();
    this.peers = 0;
  }
}
