/**
 * SignalingClient against a scripted fake WebSocket: close-code policy, reconnect context,
 * resume tokens and frame handling, deterministically. The real-server tests are in
 * test/integration/client.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type ReconnectContext, type ReconnectPolicy, SignalingClient, type SignalingError, type WebSocketLike } from '../../signaling/client/index.js';
import { DEFAULT_LIMITS, FINAL_CLOSE_CODES, type ServerMessage } from '../../signaling/protocol/index.js';
import { FakeClock } from '../helpers/fake-clock.js';

class FakeWebSocket implements WebSocketLike {
  static instances: FakeWebSocket[] = [];
  private static waiters: ((ws: FakeWebSocket) => void)[] = [];
  /** Resolves with the next instance the client constructs. */
  static next(): Promise<FakeWebSocket> {
    return new Promise((resolve) => FakeWebSocket.waiters.push(resolve));
  }

  readyState = 0;
  protocol = '';
  bufferedAmount = 0;
  readonly sent: string[] = [];
  closedWith: { code?: number; reason?: string } | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeWebSocket.instances.push(this);
    for (const w of FakeWebSocket.waiters.splice(0)) w(this);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    if (this.readyState >= 2) return;
    this.closedWith = { code, reason };
    this.readyState = 2;
    // The server echoes our close code.
    queueMicrotask(() => this.serverClose(code ?? 1005, reason ?? ''));
  }

  // --- the "server" side ---
  serverOpen(): void {
    this.readyState = 1;
    this.protocol = 'rallypoint.v1';
    this.onopen?.({});
  }
  serverSend(msg: ServerMessage | string | ArrayBuffer): void {
    this.onmessage?.({ data: typeof msg === 'string' || msg instanceof ArrayBuffer ? msg : JSON.stringify(msg) });
  }
  serverClose(code: number, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  sentMessages(): Record<string, unknown>[] {
    return this.sent.map((s) => JSON.parse(s) as Record<string, unknown>);
  }
}

const welcome = (over: Partial<Extract<ServerMessage, { type: 'welcome' }>> = {}): ServerMessage => ({
  type: 'welcome',
  id: 'me',
  room: 'lobby',
  peers: [],
  iceServers: [],
  resume: { token: 'tok-1', graceMs: 10_000 },
  resumed: false,
  limits: { ...DEFAULT_LIMITS },
  ...over,
});

/** A policy that records its contexts and always retries at once. */
function recordingPolicy(): ReconnectPolicy & { calls: ReconnectContext[] } {
  const calls: ReconnectContext[] = [];
  return {
    calls,
    nextDelayMs(ctx) {
      calls.push(ctx);
      return 0;
    },
  };
}

const clients: SignalingClient[] = [];
function make(opts: Partial<ConstructorParameters<typeof SignalingClient>[0]> = {}): SignalingClient {
  const c = new SignalingClient({ url: 'ws://signal.example/ws', room: 'lobby', WebSocket: FakeWebSocket, transports: ['websocket'], reconnect: recordingPolicy(), ...opts });
  clients.push(c);
  return c;
}

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  FakeWebSocket.instances = [];
  vi.useRealTimers();
});

/** Connects a client through its first welcome. */
async function connected(c: SignalingClient, w = welcome()): Promise<FakeWebSocket> {
  const p = c.connect();
  const ws = FakeWebSocket.instances.at(-1)!;
  ws.serverOpen();
  ws.serverSend(w);
  await p;
  return ws;
}

describe('SignalingClient (fake WebSocket)', () => {
  it('offers the subprotocol, sends the token in the query and join (with meta) on open', async () => {
    const c = make({ token: 'a b&c', meta: { name: 'ada' } });
    const p = c.connect();
    const ws = FakeWebSocket.instances[0]!;
    expect(ws.protocols).toEqual(['rallypoint.v1']);
    expect(new URL(ws.url).searchParams.get('token')).toBe('a b&c');
    expect(ws.sent).toEqual([]);
    ws.serverOpen();
    expect(ws.sentMessages()).toEqual([{ type: 'join', room: 'lobby', meta: { name: 'ada' } }]);
    ws.serverSend(welcome());
    await expect(p).resolves.toMatchObject({ id: 'me', resumed: false });
  });

  it('several connect() calls share one connection', async () => {
    const c = make();
    const p1 = c.connect();
    const p2 = c.connect();
    expect(FakeWebSocket.instances).toHaveLength(1);
    const ws = FakeWebSocket.instances[0]!;
    ws.serverOpen();
    ws.serverSend(welcome());
    await expect(Promise.all([p1, p2])).resolves.toHaveLength(2);
  });

  it.each([...FINAL_CLOSE_CODES, 1000])('close code %i is final: close event, no reconnect', async (code) => {
    const policy = recordingPolicy();
    const c = make({ reconnect: policy });
    const ws = await connected(c);
    const events: string[] = [];
    c.on('reconnecting', () => events.push('reconnecting'));
    c.on('close', (info) => events.push(`close ${info.code} ${info.reason}`));
    ws.serverClose(code, 'bye');
    expect(events).toEqual([`close ${code} bye`]);
    expect(policy.calls).toEqual([]);
    expect(c.state).toBe('closed');
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it.each([1001, 1005, 1006, 1009, 1011, 1012, 4009, 4029])('close code %i reconnects with the resume token', async (code) => {
    const policy = recordingPolicy();
    const c = make({ reconnect: policy });
    const ws = await connected(c);
    const reconnecting = c.next('reconnecting');
    const nextWs = FakeWebSocket.next();
    ws.serverClose(code);
    expect((await reconnecting)[0]).toEqual({ attempt: 0, delayMs: 0, closeCode: code });
    expect(policy.calls).toEqual([{ attempt: 0, elapsedMs: expect.any(Number), closeCode: code }]);
    expect(c.state).toBe('reconnecting');
    const ws2 = await nextWs;
    ws2.serverOpen();
    expect(ws2.sentMessages()).toEqual([{ type: 'join', room: 'lobby', resume: 'tok-1' }]);
    const opened = c.next('open');
    ws2.serverSend(welcome({ resumed: true, resume: { token: 'tok-2', graceMs: 10_000 } }));
    expect((await opened)[0]).toMatchObject({ id: 'me', resumed: true });
    expect(c.state).toBe('open');
  });

  it('the policy sees attempts counting up while the outage lasts, and from 0 after a welcome', async () => {
    const policy = recordingPolicy();
    const c = make({ reconnect: policy });
    const ws = await connected(c);
    let next = FakeWebSocket.next();
    ws.serverClose(1006);
    for (let i = 0; i < 3; i++) {
      const w = await next;
      next = FakeWebSocket.next();
      w.serverClose(1006); // never opened
    }
    const w = await next;
    w.serverOpen();
    w.serverSend(welcome({ resumed: true, resume: { token: 'tok-2', graceMs: 1 } }));
    expect(policy.calls.map((ctx) => ctx.attempt)).toEqual([0, 1, 2, 3]);
    for (const ctx of policy.calls) expect(ctx.elapsedMs).toBeGreaterThanOrEqual(0);
    // A new outage starts from attempt 0 and uses the newest token.
    const again = FakeWebSocket.next();
    w.serverClose(1006);
    const w2 = await again;
    w2.serverOpen();
    expect(policy.calls.at(-1)!.attempt).toBe(0);
    expect(w2.sentMessages()[0]).toMatchObject({ resume: 'tok-2' });
  });

  it('a policy returning null gives up: connect() rejects with gave-up, close emitted once', async () => {
    const c = make({ reconnect: { nextDelayMs: () => null } });
    const p = c.connect();
    const closes: unknown[] = [];
    c.on('close', (i) => closes.push(i));
    FakeWebSocket.instances[0]!.serverClose(1006);
    await expect(p).rejects.toMatchObject({ code: 'gave-up' });
    expect(closes).toEqual([{ code: 1006, reason: 'gave up reconnecting' }]);
  });

  it('a binary or undecodable frame is an error event; the connection stays', async () => {
    const c = make();
    const ws = await connected(c);
    const errors: SignalingError[] = [];
    c.on('error', (e) => errors.push(e));
    ws.serverSend(new ArrayBuffer(4));
    ws.serverSend('not json');
    ws.serverSend('{"type":"welcome"}');
    ws.serverSend('{"type":"surprise"}');
    expect(errors.map((e) => e.code)).toEqual(['bad-message', 'bad-json', 'bad-message', 'bad-message']);
    expect(c.state).toBe('open');
    expect(ws.closedWith).toBeNull();
  });

  it('an error frame after welcome is only an event; before welcome it refuses the join', async () => {
    const c = make();
    const ws = await connected(c);
    const got = c.next('error');
    ws.serverSend({ type: 'error', code: 'rate-limited', message: 'slow down', ref: 'r' });
    const [err] = await got;
    expect(err).toMatchObject({ code: 'rate-limited', ref: 'r', message: 'slow down' });
    expect(ws.closedWith).toBeNull();

    const d = make();
    const p = d.connect();
    const ws2 = FakeWebSocket.instances.at(-1)!;
    ws2.serverOpen();
    const closed = d.next('close');
    ws2.serverSend({ type: 'error', code: 'too-many-rooms', message: 'no more rooms' });
    await expect(p).rejects.toMatchObject({ code: 'too-many-rooms' });
    expect(ws2.closedWith).toEqual({ code: 1000, reason: 'join refused: too-many-rooms' });
    expect((await closed)[0]).toEqual({ code: 1000, reason: 'join refused: too-many-rooms' });
    expect(FakeWebSocket.instances.filter((w) => w !== ws)).toHaveLength(1);
  });

  it('a join refused on a reconnect ends the client too', async () => {
    const c = make();
    const ws = await connected(c);
    const next = FakeWebSocket.next();
    ws.serverClose(1006);
    const ws2 = await next;
    ws2.serverOpen();
    const closed = c.next('close');
    ws2.serverSend({ type: 'error', code: 'room-full', message: 'full' });
    expect((await closed)[0].code).toBe(1000);
    expect(c.state).toBe('closed');
  });

  it('peer events and signals are re-emitted with their arguments', async () => {
    const c = make();
    const ws = await connected(c);
    const seen: unknown[] = [];
    c.on('peer-joined', (p) => seen.push(['joined', p]));
    c.on('peer-left', (id, reason) => seen.push(['left', id, reason]));
    c.on('signal', (from, data) => seen.push(['signal', from, data]));
    ws.serverSend({ type: 'peer-joined', peer: { id: 'p', meta: { a: 1 } } });
    ws.serverSend({ type: 'signal', from: 'p', data: null });
    ws.serverSend({ type: 'peer-left', id: 'p', reason: 'timeout' });
    expect(seen).toEqual([
      ['joined', { id: 'p', meta: { a: 1 } }],
      ['signal', 'p', null],
      ['left', 'p', 'timeout'],
    ]);
  });

  it('leave() sends leave, then closes with 1000; frames of the old socket are ignored afterwards', async () => {
    const c = make();
    const ws = await connected(c);
    c.leave();
    expect(ws.sentMessages().at(-1)).toEqual({ type: 'leave' });
    expect(ws.closedWith).toEqual({ code: 1000, reason: 'client closed' });
    const events: string[] = [];
    c.on('signal', () => events.push('signal'));
    ws.serverSend({ type: 'signal', from: 'p', data: 1 });
    expect(events).toEqual([]);
  });

  it('the size check uses the announced maxMessageBytes', async () => {
    const c = make();
    await connected(c, welcome({ limits: { maxMessageBytes: 100 } }));
    expect(() => c.signal('p', 'x'.repeat(100))).toThrow(expect.objectContaining({ code: 'too-large' }));
    expect(() => c.signal('p', 'x'.repeat(40))).not.toThrow();
  });

  it("relay(): bytes go out as b64, false flags stay off the wire; false when not joined; bufferedAmount is the socket's", async () => {
    const c = make();
    expect(c.relay('p', 'c', {})).toBe(false);
    expect(c.bufferedAmount).toBe(0);
    const ws = await connected(c);
    ws.sent.length = 0;
    expect(c.relay('p', 'c', { data: new Uint8Array([255, 0, 1]), seq: 3, ack: 2, more: true, unreliable: false })).toBe(true);
    expect(c.relay('p', 'c', { data: 'text', more: false, unreliable: true })).toBe(true);
    expect(ws.sentMessages()).toEqual([
      { type: 'relay', to: 'p', channel: 'c', data: '/wAB', b64: true, seq: 3, ack: 2, more: true },
      { type: 'relay', to: 'p', channel: 'c', data: 'text', unreliable: true },
    ]);
    ws.bufferedAmount = 1234;
    expect(c.bufferedAmount).toBe(1234);
    ws.serverClose(1006);
    expect(c.relay('p', 'c', {})).toBe(false);
    expect(c.bufferedAmount).toBe(0);
  });

  it('a relay frame is emitted once, b64 decoded', async () => {
    const c = make();
    const ws = await connected(c);
    const got: unknown[] = [];
    c.on('relay', (f) => got.push(f));
    ws.serverSend({ type: 'relay', from: 'q', channel: 'c', data: '/wAB', b64: true, seq: 1, more: true, unreliable: true });
    ws.serverSend({ type: 'relay', from: 'q', channel: 'c', data: '/wAB' });
    expect(got).toEqual([
      { from: 'q', channel: 'c', data: new Uint8Array([255, 0, 1]), seq: 1, more: true, unreliable: true },
      { from: 'q', channel: 'c', data: '/wAB' },
    ]);
  });
});

/** The client's own timers (welcome timeout, ping liveness), driven by fake timers and a fake Date. */
describe('SignalingClient liveness (fake clock)', () => {
  const pings = (ws: FakeWebSocket): number => ws.sentMessages().filter((m) => m.type === 'ping').length;

  it('an idle connection pings after pingAfterMs of silence; each answer keeps it; no reconnect, ever', async () => {
    vi.useFakeTimers();
    const c = make({ pingAfterMs: 1_000, pingTimeoutMs: 500 });
    const errors: SignalingError[] = [];
    c.on('error', (e) => errors.push(e));
    const ws = await connected(c);
    for (let i = 1; i <= 10; i++) {
      await vi.advanceTimersByTimeAsync(999);
      expect(pings(ws)).toBe(i - 1);
      await vi.advanceTimersByTimeAsync(1);
      expect(pings(ws)).toBe(i);
      await vi.advanceTimersByTimeAsync(400);
      ws.serverSend({ type: 'pong', ref: 'rallypoint.ping' });
    }
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(c.state).toBe('open');
    expect(errors).toEqual([]);
  });

  it('any frame counts as an answer, and traffic postpones the ping', async () => {
    vi.useFakeTimers();
    const c = make({ pingAfterMs: 1_000, pingTimeoutMs: 500 });
    const ws = await connected(c);
    // A signal every 600 ms: never 1 s of silence, never a ping.
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(600);
      ws.serverSend({ type: 'signal', from: 'x', data: i });
    }
    expect(pings(ws)).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pings(ws)).toBe(1);
    // A server older than `ping` answers it with bad-message echoing the ref: proof of life, not reported.
    const errors: SignalingError[] = [];
    c.on('error', (e) => errors.push(e));
    ws.serverSend({ type: 'error', code: 'bad-message', message: 'type: unknown type', ref: 'rallypoint.ping' });
    await vi.advanceTimersByTimeAsync(900);
    expect(c.state).toBe('open');
    expect(errors).toEqual([]);
  });

  it('an unanswered ping gives the connection up after pingTimeoutMs: timeout error, close 4408, reconnect with resume', async () => {
    vi.useFakeTimers();
    const policy = recordingPolicy();
    const c = make({ pingAfterMs: 1_000, pingTimeoutMs: 500, reconnect: policy });
    const errors: SignalingError[] = [];
    const reconnecting: number[] = [];
    c.on('error', (e) => errors.push(e));
    c.on('reconnecting', (info) => reconnecting.push(info.closeCode));
    const ws = await connected(c);
    await vi.advanceTimersByTimeAsync(1_499);
    expect(pings(ws)).toBe(1);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(errors.map((e) => e.code)).toEqual(['timeout']);
    expect(errors[0]?.message).toMatch(/no answer to ping within 500 ms/);
    // Closed with 4408, not 1000: the server keeps the session for the resume.
    expect(ws.closedWith?.code).toBe(4408);
    expect(reconnecting).toEqual([4408]);
    expect(policy.calls[0]?.closeCode).toBe(4408);
    await vi.advanceTimersByTimeAsync(1);
    const next = FakeWebSocket.instances[1]!;
    next.serverOpen();
    expect(next.sentMessages()[0]).toMatchObject({ type: 'join', resume: 'tok-1' });
  });

  it('a timer that fires late (throttled tab) pings first instead of declaring the connection dead', async () => {
    vi.useFakeTimers();
    const c = make({ pingAfterMs: 1_000, pingTimeoutMs: 500 });
    const ws = await connected(c);
    // Date jumps far ahead without the timers running, as in a throttled background tab.
    vi.setSystemTime(Date.now() + 60_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pings(ws)).toBe(1);
    expect(c.state).toBe('open');
    ws.serverSend({ type: 'pong' });
    await vi.advanceTimersByTimeAsync(600);
    expect(c.state).toBe('open');
  });

  it('no welcome within welcomeTimeoutMs: timeout error, that attempt is closed and another one starts', async () => {
    vi.useFakeTimers();
    const policy = recordingPolicy();
    const c = make({ welcomeTimeoutMs: 2_000, reconnect: policy });
    const errors: SignalingError[] = [];
    c.on('error', (e) => errors.push(e));
    const p = c.connect();
    const first = FakeWebSocket.instances[0]!;
    first.serverOpen(); // upgraded, join sent, and then nothing
    await vi.advanceTimersByTimeAsync(1_999);
    expect(errors).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(errors.map((e) => e.code)).toEqual(['timeout']);
    expect(errors[0]?.message).toMatch(/no welcome within 2000 ms/);
    expect(first.closedWith?.code).toBe(4408);
    await vi.advanceTimersByTimeAsync(1);
    const second = FakeWebSocket.instances[1]!;
    // A socket that never even opens counts too.
    await vi.advanceTimersByTimeAsync(2_000);
    expect(errors).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    const third = FakeWebSocket.instances[2]!;
    expect(second.closedWith?.code).toBe(4408);
    third.serverOpen();
    third.serverSend(welcome());
    await expect(p).resolves.toMatchObject({ id: 'me' });
    expect(policy.calls.map((x) => x.closeCode)).toEqual([4408, 4408]);
  });

  it('without reconnect, a welcome timeout rejects connect() and closes the client', async () => {
    vi.useFakeTimers();
    const c = make({ welcomeTimeoutMs: 100, reconnect: false });
    const closed: number[] = [];
    c.on('close', (info) => closed.push(info.code));
    const p = c.connect();
    const rejected = expect(p).rejects.toMatchObject({ code: 'closed' });
    await vi.advanceTimersByTimeAsync(100);
    await rejected;
    expect(closed).toEqual([4408]);
    expect(c.state).toBe('closed');
  });

  it('validates its timing options', () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      expect(() => make({ pingAfterMs: bad })).toThrow(RangeError);
      expect(() => make({ pingTimeoutMs: bad })).toThrow(RangeError);
      expect(() => make({ welcomeTimeoutMs: bad })).toThrow(RangeError);
    }
    expect(() => make({ pingAfterMs: 1, pingTimeoutMs: 2 ** 31 - 1, welcomeTimeoutMs: 50 })).not.toThrow();
  });

  it('close() leaves no timer behind', async () => {
    vi.useFakeTimers();
    const c = make({ pingAfterMs: 1_000 });
    await connected(c);
    expect(vi.getTimerCount()).toBe(1);
    await c.close();
    expect(vi.getTimerCount()).toBe(0);
  });
});

/** The same machine on an injected clock (`clock` option): no fake timers, no global Date. */
describe('SignalingClient on an injected clock', () => {
  const pings = (ws: FakeWebSocket): number => ws.sentMessages().filter((m) => m.type === 'ping').length;

  it('drives the welcome timeout, the liveness ping and the reconnect delay', async () => {
    const clock = new FakeClock();
    const c = make({ clock, welcomeTimeoutMs: 2_000, pingAfterMs: 1_000, pingTimeoutMs: 500 });
    const errors: string[] = [];
    c.on('error', (e) => errors.push(e.message));
    void c.connect().catch(() => undefined);
    FakeWebSocket.instances[0]!.serverOpen();
    clock.advance(1_999);
    expect(errors).toEqual([]);
    clock.advance(1);
    expect(errors).toEqual(['no welcome within 2000 ms']);
    clock.advance(0); // the recording policy retries at once
    const ws = FakeWebSocket.instances[1]!;
    ws.serverOpen();
    ws.serverSend(welcome());
    clock.advance(999);
    expect(pings(ws)).toBe(0);
    clock.advance(1);
    expect(pings(ws)).toBe(1);
    clock.advance(500);
    expect(errors.at(-1)).toBe('no answer to ping within 500 ms');
    expect(ws.closedWith?.code).toBe(4408);
    expect(clock.pending().timeouts).toBe(1); // the reconnect
    await c.close();
    expect(clock.pending().timeouts).toBe(0);
  });

  it('the transport ladder gives a silent WebSocket up after probeMs and tries the next transport', async () => {
    const clock = new FakeClock();
    const fetched: string[] = [];
    const fetch = ((url: string) => {
      fetched.push(url);
      return new Promise(() => undefined); // a poll that never answers
    }) as unknown as typeof globalThis.fetch;
    const c = make({ clock, transports: ['websocket', 'poll'], probeMs: 1_000, fetch });
    void c.connect().catch(() => undefined);
    const ws = FakeWebSocket.instances[0]!;
    ws.serverOpen(); // upgraded, and then nothing
    clock.advance(999);
    expect(fetched).toEqual([]);
    clock.advance(1);
    expect(c.transportReason).toBe('websocket failed: silent');
    expect(ws.closedWith?.code).toBe(4011);
    await Promise.resolve();
    expect(fetched).toHaveLength(1);
    expect(fetched[0]).toMatch(/^http:\/\/signal\.example\/ws\?t=poll&v=rallypoint\.v1$/);
    // The last transport just waits: no probe for it.
    expect(clock.pending().timeouts).toBe(1); // the welcome timeout
  });
});
