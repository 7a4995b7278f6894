import { listenSignaling, type ListeningSignalingServer } from '../../signaling/server/index.js';
import { joinRoom, type JoinRoomOptions, type Room } from '../../peer/node.js';

/** A signaling server and the rooms a test joined, all closed by `close()`. */
export class PeerHarness {
  private server: ListeningSignalingServer | null = null;
  private readonly rooms: Room[] = [];

  async url(): Promise<string> {
    this.server ??= await listenSignaling({ port: 0, host: '127.0.0.1', logger: false, limits: { maxConnectionsPerIp: 0 } });
    return this.server.wsUrl;
  }

  async join(room: string, extra: Partial<JoinRoomOptions> = {}): Promise<Room> {
    const r = await joinRoom({ url: await this.url(), room, ...extra });
    this.rooms.push(r);
    return r;
  }

  /** Joins `count` peers and waits until every one is connected to every other. */
  async mesh(room: string, count: number, extra: Partial<JoinRoomOptions> = {}): Promise<Room[]> {
    const rooms: Room[] = [];
    const connected: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const r = await this.join(room, extra);
      connected.push(waitConnected(r, count - 1));
      rooms.push(r);
    }
    await Promise.all(connected);
    return rooms;
  }

  async close(): Promise<void> {
    await Promise.all(this.rooms.splice(0).map((r) => r.leave()));
    await this.server?.close();
    this.server = null;
  }
}

/** Resolves when `room` has `n` connected peers. */
export function waitConnected(room: Room, n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if ([...room.peers.values()].filter((p) => p.connected).length >= n) {
        room.off('peer-connected', check);
        resolve();
      }
    };
    room.on('peer-connected', check);
    check();
  });
}

/** Collects messages of one channel from a room. */
export function collect(room: Room, channel: string): unknown[] {
  const got: unknown[] = [];
  room.on('message', (m) => {
    if (m.channel === channel) got.push(m.data);
  });
  return got;
}

/** Resolves when `pred` holds after a message on `room`. */
export function until(room: Room, pred: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (pred()) return resolve();
    const on = (): void => {
      if (pred()) {
        room.off('message', on);
        resolve();
      }
    };
    room.on('message', on);
  });
}

/** Waits until the process holds no handles but stdio (werift closes sockets asynchronously). */
export async function untilNoHandles(deadlineMs = 5_000): Promise<string[]> {
  const start = Date.now();
  const busy = (): string[] => process.getActiveResourcesInfo().filter((r) => r !== 'PipeWrap' && r !== 'TTYWrap');
  while (busy().length && Date.now() - start < deadlineMs) await new Promise((r) => setImmediate(r));
  return busy();
}
