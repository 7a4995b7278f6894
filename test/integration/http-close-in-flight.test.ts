/**
 * An HTTP transport (SSE) closed while a POST of frames is in flight, as the client does
 * when it moves back up to a WebSocket (close 4011): the server has taken that POST, so
 * close() must let it finish and send only what is left. It used to abort the POST and send
 * all unconfirmed frames again in the closing POST: the recipient got them twice (seen as a
 * duplicated signal around the move in test/proxy/middlebox.test.ts).
 */
import { afterEach, expect, it } from 'vitest';
import { HttpSocket } from '../../signaling/client/http-socket.js';
import { cleanup } from '../helpers/resources.js';
import { startServer } from '../helpers/server.js';

afterEach(cleanup);

it('close() during a POST in flight: the POST is not aborted, its frames arrive once, the rest follow in the closing POST', async () => {
  const srv = await startServer();
  const { client: peer, id: peerId } = await srv.joined('r');

  // A fetch that, for the POST carrying the `held` signal, answers only once the test says
  // so: after the server has taken it, as a slow network would. It honours the abort signal.
  let release: () => void = () => {};
  let reachedServer: () => void = () => {};
  const atServer = new Promise<void>((r) => {
    reachedServer = r;
  });
  let aborted = false;
  let holding = true;
  const fetcher: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    if (holding && init?.method === 'POST' && typeof init.body === 'string' && init.body.includes('"held"')) {
      holding = false;
      await new Promise<void>((resolve, reject) => {
        release = resolve;
        init.signal?.addEventListener('abort', () => {
          aborted = true;
          reject(new DOMException('aborted', 'AbortError'));
        });
        reachedServer();
      });
    }
    return res;
  };

  const socket = new HttpSocket(srv.wsUrl.replace(/^ws/, 'http'), 'sse', fetcher);
  const messages: string[] = [];
  socket.onmessage = (ev) => messages.push(String(ev.data));
  await new Promise<void>((resolve) => {
    socket.onopen = () => resolve();
  });
  socket.send(JSON.stringify({ type: 'join', room: 'r' }));
  await expect.poll(() => messages.some((m) => m.includes('"welcome"'))).toBe(true);

  socket.send(JSON.stringify({ type: 'signal', to: peerId, data: 'held' }));
  await atServer;
  // Queued behind the POST in flight: it goes in the closing POST.
  socket.send(JSON.stringify({ type: 'signal', to: peerId, data: 'after' }));
  socket.close(4011, 'moving');
  release();
  await socket.done;

  const got: unknown[] = [];
  for (;;) {
    const m = await peer.next('signal');
    got.push(m.data);
    if (m.data === 'after') break;
  }
  expect(got).toEqual(['held', 'after']);
  expect(aborted).toBe(false);
});
