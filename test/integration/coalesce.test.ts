import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { cleanup } from '../helpers/resources.js';
import { startServer } from '../helpers/server.js';

afterEach(cleanup);

describe('frame coalescing (Connection.send corks the socket for the rest of the tick)', () => {
  it('ws still exposes the private `_socket` the server corks (a ws upgrade must not silently lose it)', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    try {
      await once(wss, 'listening');
      const { port } = wss.address() as { port: number };
      const client = new WebSocket(`ws://127.0.0.1:${port}`);
      const [[serverSide]] = (await Promise.all([once(wss, 'connection'), once(client, 'open')])) as [[WebSocket], unknown];
      const socket = (serverSide as unknown as { _socket?: Duplex })._socket;
      expect(typeof socket?.cork).toBe('function');
      expect(typeof socket?.uncork).toBe('function');
      client.close();
      await once(client, 'close');
    } finally {
      wss.close();
    }
  });

  it('a burst relayed within one tick arrives whole and in order', async () => {
    const srv = await startServer({ limits: { messageBurst: 1000, messagesPerSecond: 1000 } });
    const a = await srv.joined('r');
    const b = await srv.joined('r');
    // One WebSocket message can only carry one frame; send many at once so the server reads
    // several in one socket read and relays them in one tick.
    for (let i = 0; i < 200; i++) b.client.send({ type: 'signal', to: a.id, data: i });
    const got: unknown[] = [];
    for (let i = 0; i < 200; i++) got.push(((await a.client.next('signal')) as { data: unknown }).data);
    expect(got).toEqual([...Array(200).keys()]);
  });
});
