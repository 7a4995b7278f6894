/**
 * Regression (found by the transports benchmark): an SSE reader that reads everything at once was closed as a
 * slow reader (1013). The server counts unacknowledged SSE frames against maxBufferedBytes,
 * and the client acked only once a second, so any stream faster than maxBufferedBytes per
 * second (4 MiB/s by default; 512 KiB/s here) was cast off within a second. The client now
 * also acks as soon as ~100 kB arrived unacked.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SignalingClient, type WebSocketConstructor } from '../../signaling/client/index.js';
import { cleanup, defer } from '../helpers/resources.js';
import { startServer } from '../helpers/server.js';

afterEach(cleanup);

const MAX_BUFFERED = 512 * 1024;
const SIGNALS = 200;
const PAD = 'x'.repeat(12_000);
/** ~1.2 MB/s: over the bound within half a second without early acks, far below it with them. */
const EVERY_MS = 10;

function client(url: string, transports: ('websocket' | 'sse')[]): SignalingClient {
  const c = new SignalingClient({ url, room: 'fast', transports, WebSocket: WebSocket as unknown as WebSocketConstructor, reconnect: false });
  defer(() => c.close());
  return c;
}

describe('SSE reader faster than maxBufferedBytes per second', () => {
  it('receives every signal without being closed as a slow reader', async () => {
    const srv = await startServer({
      limits: { maxBufferedBytes: MAX_BUFFERED, relayMaxBufferedBytes: 256 * 1024, resumeQueueLength: 8, messagesPerSecond: 1_000_000, messageBurst: 1_000_000 },
    });
    const a = client(srv.wsUrl, ['websocket']);
    await a.connect();
    const b = client(srv.wsUrl, ['sse']);
    const closes: string[] = [];
    b.on('close', (i) => closes.push(`${i.code} ${i.reason}`));
    const received: number[] = [];
    let sent = 0;
    const all = new Promise<void>((resolve, reject) => {
      b.on('signal', (_from, data) => {
        received.push((data as { n: number }).n);
        if (received.length === SIGNALS) resolve();
      });
      b.on('close', (i) => reject(new Error(`B closed: ${i.code} ${i.reason} after ${received.length} signals`)));
    });
    await b.connect();
    expect(b.transport).toBe('sse');
    // ~2.4 MB in all over ~2 s, paced: an ack round trip of up to ~300 ms still keeps what is
    // unacked under the bound (~100 kB before the ack, plus what arrives while it travels).
    const timer = setInterval(() => sent < SIGNALS && a.signal(b.id as string, { n: sent++, pad: PAD }), EVERY_MS);
    defer(() => clearInterval(timer));
    await all;
    expect(received).toEqual([...Array(SIGNALS).keys()]);
    expect(closes).toEqual([]);
    expect(b.state).toBe('open');
  });
});
