import { type JoinRoomOptions, joinRoom, type RemotePeer, type Room, type RtcRuntime, weriftRuntime } from '../../peer/node.js';
import type { PeerPath } from '../../peer/stats.js';
import { type ListeningSignalingServer, listenSignaling } from '../../signaling/server/index.js';

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

export interface Gate {
  open: boolean;
}

/** werift, except that while the gate is closed no remote candidate reaches ICE. */
export function gatedRuntime(gate: Gate): RtcRuntime {
  const base = weriftRuntime();
  class Gated extends base.RTCPeerConnection {
    override async addIceCandidate(candidate?: RTCIceCandidateInit | null): Promise<void> {
      if (!gate.open) return;
      return super.addIceCandidate(candidate ?? undefined);
    }
    override async setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
      const sdp = !gate.open && description.sdp ? description.sdp.replace(/^a=candidate:.*\r\n/gm, '') : description.sdp;
      return super.setRemoteDescription(sdp === undefined ? description : { type: description.type, sdp });
    }
  }
  return { ...base, RTCPeerConnection: Gated as unknown as typeof RTCPeerConnection };
}

/** Fallback and ICE restart timings short enough for tests (the fallback after 400 ms). */
export const FAST = {
  fallback: { afterMs: 400 },
  restart: { disconnectedGraceMs: 200, baseDelayMs: 100, maxDelayMs: 400, attemptTimeoutMs: 1_500 },
};

/** The room's one remote peer (two-peer tests). */
export function onlyPeer(room: Room): RemotePeer {
  const [peer] = room.peers.values();
  if (!peer) throw new Error('no peer');
  return peer;
}

/** Resolves when the room's only peer reaches `path`. */
export function pathOf(room: Room, want: (p: PeerPath) => boolean): Promise<PeerPath> {
  return new Promise((resolve) => {
    const peer = room.peers.values().next().value as RemotePeer | undefined;
    if (peer?.path && want(peer.path)) return resolve(peer.path);
    const on = (_peer: RemotePeer, path: PeerPath): void => {
      if (!want(path)) return;
      room.off('path-change', on);
      resolve(path);
    };
    room.on('path-change', on);
  });
}

/**
 * Sends numbered reliable messages from `room` to its peer every couple of ms until
 * `stop()`; resolves with how many it sent. Sends are awaited, as an app would.
 */
export function pump(room: Room): { stop(): Promise<number> } {
  let running = true;
  let n = 0;
  const done = (async () => {
    while (running) {
      await onlyPeer(room).send('reliable', `m${n}`);
      n++;
      if (n % 4 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    return n;
  })();
  return {
    stop: async () => {
      running = false;
      return done;
    },
  };
}
