/**
 * The SignalingClient's side of relay frames (the WebSocket data fallback) against a real server: relay() and
 * the `relay` event, text and binary, what relay() refuses, bufferedAmount and the relay
 * limits of the welcome; and the CLI's --relay switch.
 */
import { once } from 'node:events';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createNodeSignalingClient } from '../../peer/node.js';
import { type ReceivedRelayFrame, type SignalingClient, SignalingError } from '../../signaling/client/index.js';
import { DEFAULT_LIMITS, type ServerMessage } from '../../signaling/protocol/index.js';
import { cli, killCliChildren, nextLine, START_LINE, start } from '../helpers/cli.js';
import { cleanup } from '../helpers/resources.js';
import { rawSocket, startServer, tracked, trackedSocket } from '../helpers/server.js';

afterEach(async () => {
  killCliChildren();
  await cleanup();
});

function client(url: string, room = 'lobby'): SignalingClient {
  const c = createNodeSignalingClient({ url, room, reconnect: false });
  tracked(c);
  return c;
}

/** Two clients joined to one room; b records its relay frames and errors. */
async function pair(url: string): Promise<{ a: SignalingClient; b: SignalingClient; aId: string; bId: string; got: ReceivedRelayFrame[]; errors: SignalingError[] }> {
  const a = client(url);
  const b = client(url);
  const aId = (await a.connect()).id;
  const bId = (await b.connect()).id;
  const got: ReceivedRelayFrame[] = [];
  const errors: SignalingError[] = [];
  b.on('relay', (f) => got.push(f));
  b.on('error', (e) => errors.push(e));
  return { a, b, aId, bId, got, errors };
}

/** Resolves once `list` holds `n` items (the client emits synchronously per frame). */
async function until<T>(c: SignalingClient, event: 'relay' | 'error', list: T[], n: number): Promise<void> {
  while (list.length < n) await c.next(event);
}

describe('SignalingClient relay', () => {
  it('relay() and the relay event: text, bytes (as a Uint8Array) and every field, from stamped', async () => {
    const s = await startServer();
    const { a, b, aId, bId, got } = await pair(s.wsUrl);
    const bytes = new Uint8Array([0, 1, 2, 127, 128, 254, 255]);
    expect(a.relay(bId, 'reliable', { data: 'hello', seq: 1, ack: 0, more: true })).toBe(true);
    expect(a.relay(bId, 'unreliable', { data: bytes, seq: 0xffffffff, unreliable: true })).toBe(true);
    expect(a.relay(bId, 'acks', { ack: 5 })).toBe(true);
    // false flags are simply absent on the wire.
    expect(a.relay(bId, 'reliable', { data: '', more: false, unreliable: false })).toBe(true);
    // A subarray: only its own bytes travel.
    expect(a.relay(bId, 'reliable', { data: bytes.subarray(2, 5) })).toBe(true);
    await until(b, 'relay', got, 5);
    expect(got).toEqual([
      { from: aId, channel: 'reliable', data: 'hello', seq: 1, ack: 0, more: true },
      { from: aId, channel: 'unreliable', data: bytes, seq: 0xffffffff, unreliable: true },
      { from: aId, channel: 'acks', ack: 5 },
      { from: aId, channel: 'reliable', data: '' },
      { from: aId, channel: 'reliable', data: new Uint8Array([2, 127, 128]) },
    ]);
    expect(got[1]?.data).toBeInstanceOf(Uint8Array);
  });

  it('random binary payloads arrive byte for byte (property, real server)', async () => {
    const s = await startServer();
    const { a, b, bId, got } = await pair(s.wsUrl);
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4_000 }), async (data) => {
        expect(a.relay(bId, 'bin', { data, seq: sent++ })).toBe(true);
        await until(b, 'relay', got, sent);
        const f = got[sent - 1]!;
        expect(f.seq).toBe(sent - 1);
        expect(Buffer.from(f.data as Uint8Array).equals(Buffer.from(data))).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('invalid base64 from a peer is an error event (bad-message), not a throw and not a relay event', async () => {
    const s = await startServer();
    const b = client(s.wsUrl);
    const bId = (await b.connect()).id;
    const got: ReceivedRelayFrame[] = [];
    const errors: SignalingError[] = [];
    b.on('relay', (f) => got.push(f));
    b.on('error', (e) => errors.push(e));
    // A hand-written peer: the server passes data through without decoding it.
    const raw = await rawSocket(s.wsUrl);
    raw.send(JSON.stringify({ type: 'join', room: 'lobby' }));
    await once(raw, 'message');
    for (const data of ['not base64!', 'AAA', 'AA==AA==']) raw.send(JSON.stringify({ type: 'relay', to: bId, channel: 'c', data, b64: true }));
    raw.send(JSON.stringify({ type: 'relay', to: bId, channel: 'c', data: 'AQI=', b64: true }));
    await until(b, 'relay', got, 1);
    expect(errors.map((e) => e.code)).toEqual(['bad-message', 'bad-message', 'bad-message']);
    expect(errors[0]?.message).toMatch(/base64/);
    expect(got).toEqual([{ from: expect.any(String), channel: 'c', data: new Uint8Array([1, 2]) }]);
    expect(b.state).toBe('open');
  });

  it('relay() is false when not joined; it throws on a bad channel, seq or data and on a frame over maxMessageBytes', async () => {
    const s = await startServer();
    const a = client(s.wsUrl);
    expect(a.relay('x', 'c', { data: 'before connect' })).toBe(false);
    const connecting = a.connect();
    expect(a.relay('x', 'c', {})).toBe(false);
    await connecting;
    const bad = (fn: () => unknown, code: string): void => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(SignalingError);
        expect((err as SignalingError).code).toBe(code);
        return;
      }
      throw new Error(`expected ${code}`);
    };
    bad(() => a.relay('x', 'not a channel', {}), 'invalid-message');
    bad(() => a.relay('x', 'c', { seq: -1 }), 'invalid-message');
    bad(() => a.relay('x', 'c', { ack: 2 ** 32 }), 'invalid-message');
    bad(() => a.relay('x', 'c', { data: 42 as unknown as string }), 'invalid-message');
    bad(() => a.relay('x', 'c', { data: 'x'.repeat(DEFAULT_LIMITS.maxMessageBytes) }), 'too-large');
    // Binary data grows by a third in base64: 12 KiB of bytes is 16 KiB of text, over the limit.
    bad(() => a.relay('x', 'c', { data: new Uint8Array(12 * 1024) }), 'too-large');
    await a.close();
    expect(a.relay('x', 'c', {})).toBe(false);
  });

  it('server errors for relay frames reach the error event; the relay limits are readable', async () => {
    const s = await startServer();
    const a = client(s.wsUrl);
    const welcome = await a.connect();
    expect(welcome.limits).toMatchObject({
      relayMessagesPerSecond: DEFAULT_LIMITS.relayMessagesPerSecond,
      relayMessageBurst: DEFAULT_LIMITS.relayMessageBurst,
      relayBytesPerSecond: DEFAULT_LIMITS.relayBytesPerSecond,
      relayBytesBurst: DEFAULT_LIMITS.relayBytesBurst,
    });
    expect(a.limits).toEqual(welcome.limits);
    expect(a.bufferedAmount).toBe(0);
    const err = a.next('error');
    expect(a.relay('nobody', 'reliable', { data: 'x' })).toBe(true);
    expect((await err)[0].code).toBe('peer-not-found');
  });

  it('relay off: the welcome says relayMessagesPerSecond 0 and a reliable frame gets relay-disabled', async () => {
    const s = await startServer({ relay: false });
    const { a, bId } = await pair(s.wsUrl);
    expect(a.limits.relayMessagesPerSecond).toBe(0);
    const err = a.next('error');
    a.relay(bId, 'reliable', { data: 'x' });
    expect((await err)[0].code).toBe('relay-disabled');
    expect(a.state).toBe('open');
  });
});

describe('CLI --data-fallback (formerly --relay)', () => {
  async function welcomeAndRelay(args: string[], env: Record<string, string> = {}): Promise<{ welcome: ServerMessage; reply: ServerMessage }> {
    const child = start(process.execPath, [cli, 'serve', '--port', '0', '--host', '127.0.0.1', '--turn', 'off', ...args], env);
    const [, , wsUrl] = START_LINE.exec(await nextLine(child)) as RegExpExecArray;
    const ws = new WebSocket(wsUrl as string, 'rallypoint.v1');
    trackedSocket(ws);
    const frames: ServerMessage[] = [];
    const waiters: (() => void)[] = [];
    ws.on('message', (d) => {
      frames.push(JSON.parse((d as Buffer).toString('utf8')) as ServerMessage);
      waiters.shift()?.();
    });
    const next = async (): Promise<ServerMessage> => {
      if (frames.length === 0) await new Promise<void>((resolve) => waiters.push(resolve));
      return frames.shift()!;
    };
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'join', room: 'lobby' }));
    const welcome = await next();
    ws.send(JSON.stringify({ type: 'relay', to: 'nobody', channel: 'c', ref: 'x' }));
    return { welcome, reply: await next() };
  }

  it('is on by default', async () => {
    const { welcome, reply } = await welcomeAndRelay([]);
    expect(welcome).toMatchObject({ type: 'welcome', limits: { relayMessagesPerSecond: DEFAULT_LIMITS.relayMessagesPerSecond } });
    expect(reply).toMatchObject({ type: 'error', code: 'peer-not-found', ref: 'x' });
  });

  it('--data-fallback off, RALLYPOINT_DATA_FALLBACK=off, and the deprecated --relay off and RALLYPOINT_RELAY=off, disable it; the relay limits have flags', async () => {
    for (const [args, env] of [
      [['--data-fallback', 'off'], {}],
      [[], { RALLYPOINT_DATA_FALLBACK: 'off' }],
      [['--relay', 'off'], {}],
      [[], { RALLYPOINT_RELAY: 'off' }],
      [['--data-fallback', 'off'], { RALLYPOINT_RELAY: 'on' }],
    ] as const) {
      const { welcome, reply } = await welcomeAndRelay([...args], env);
      expect(welcome).toMatchObject({ type: 'welcome', limits: { relayMessagesPerSecond: 0 } });
      expect(reply).toMatchObject({ type: 'error', code: 'relay-disabled', ref: 'x' });
    }
    const { welcome } = await welcomeAndRelay(['--relay-messages-per-second', '30', '--relay-bytes-burst', '65536'], { RALLYPOINT_RELAY_MESSAGE_BURST: '60' });
    expect(welcome).toMatchObject({ limits: { relayMessagesPerSecond: 30, relayMessageBurst: 60, relayBytesBurst: 65536 } });
  });

  it('--data-fallback on wins over the deprecated RALLYPOINT_RELAY=off', async () => {
    const { welcome, reply } = await welcomeAndRelay(['--data-fallback', 'on'], { RALLYPOINT_RELAY: 'off' });
    expect(welcome).toMatchObject({ type: 'welcome', limits: { relayMessagesPerSecond: DEFAULT_LIMITS.relayMessagesPerSecond } });
    expect(reply).toMatchObject({ type: 'error', code: 'peer-not-found', ref: 'x' });
  });
});
