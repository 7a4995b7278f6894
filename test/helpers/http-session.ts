/**
 * A hand-driven client of the HTTP transports (PROTOCOL.md, "HTTP transports"): every
 * request is explicit, so tests can drop a poll, replay a POST, lie about acks or stop
 * reading, which the real client (signaling/client/http-socket.ts) never does.
 */
import { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, request } from 'node:http';
import { type ServerMessage, SUBPROTOCOL } from '../../signaling/protocol/index.js';
import { defer } from './resources.js';

export interface SseEvent {
  id: number;
  type: string;
  data: string;
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Parses `text/event-stream` blocks (complete ones only; returns what is left over). */
export function parseEvents(text: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  let rest = text;
  for (let i = rest.indexOf('\n\n'); i >= 0; i = rest.indexOf('\n\n')) {
    const block = rest.slice(0, i);
    rest = rest.slice(i + 2);
    const e: SseEvent = { id: 0, type: 'message', data: '' };
    let any = false;
    for (const line of block.split('\n')) {
      const c = line.indexOf(': ');
      const k = line.slice(0, c);
      const v = line.slice(c + 2);
      if (k === 'id') e.id = Number(v);
      else if (k === 'event') e.type = v;
      else if (k === 'data') e.data = v;
      else continue;
      any = true;
    }
    if (any) events.push(e);
  }
  return { events, rest };
}

/** One HTTP request without keep-alive (no pooled socket outlives the test). */
export function send(url: string, opts: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', agent: false, headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** An open SSE response read as it comes; `next()` waits for the next event. */
export class SseStream {
  readonly events: SseEvent[] = [];
  comments = 0;
  ended = false;
  private buf = '';
  private waiters: (() => void)[] = [];

  constructor(
    readonly req: ClientRequest,
    readonly res: IncomingMessage,
  ) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.buf += chunk;
      this.comments += (chunk.match(/^: /gm) ?? []).length;
      const { events, rest } = parseEvents(this.buf);
      this.buf = rest;
      this.events.push(...events);
      for (const w of this.waiters.splice(0)) w();
    });
    res.on('close', () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves once `check` holds for what arrived (or rejects when the stream ended first). */
  async until<T>(check: (events: SseEvent[]) => T | undefined | false, what: string): Promise<T> {
    for (;;) {
      const got = check(this.events);
      if (got !== undefined && got !== false) return got;
      if (this.ended) throw new Error(`stream ended before ${what}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Frames (decoded) that arrived so far. */
  frames(): ServerMessage[] {
    return this.events.filter((e) => e.type === 'message').map((e) => JSON.parse(e.data) as ServerMessage);
  }

  close(): void {
    this.req.destroy();
  }
}

export function openStream(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; stream: SseStream }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers }, (res) => {
      const stream = new SseStream(req, res);
      defer(() => stream.close());
      resolve({ status: res.statusCode ?? 0, headers: res.headers, stream });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A session opened by hand: its id, and its requests. */
export class RawSession {
  batch = 0;

  constructor(
    readonly base: string,
    readonly sid: string,
  ) {
    // Left like a client that leaves (a held session would make the server's close wait).
    defer(() => send(`${base}?t=send&sid=${sid}&n=999999&close=1000`, { method: 'POST' }).catch(() => undefined));
  }

  /** Opens a long-poll session (the answer carries only the open event). */
  static async poll(base: string, query = '', headers: Record<string, string> = {}): Promise<RawSession> {
    const a = await send(`${base}?t=poll&v=${SUBPROTOCOL}${query}`, { headers });
    if (a.status !== 200) throw new Error(`open answered ${a.status}: ${a.body}`);
    const open = parseEvents(a.body).events[0];
    if (open?.type !== 'open') throw new Error(`no open event in ${JSON.stringify(a.body)}`);
    return new RawSession(base, (JSON.parse(open.data) as { sid: string }).sid);
  }

  /** Opens an SSE session; the stream stays open. */
  static async sse(base: string, query = ''): Promise<{ session: RawSession; stream: SseStream; headers: IncomingHttpHeaders }> {
    const { status, headers, stream } = await openStream(`${base}?t=sse&v=${SUBPROTOCOL}${query}`);
    if (status !== 200) throw new Error(`open answered ${status}`);
    const open = await stream.until((e) => e[0], 'the open event');
    return { session: new RawSession(base, (JSON.parse(open.data) as { sid: string }).sid), stream, headers };
  }

  /** POSTs frames as batch `n` (default: the next one). */
  post(frames: unknown[], opts: { n?: number; ack?: number; close?: number; body?: string } = {}): Promise<Answer> {
    const n = opts.n ?? ++this.batch;
    const q = `&n=${n}${opts.ack !== undefined ? `&ack=${opts.ack}` : ''}${opts.close !== undefined ? `&close=${opts.close}` : ''}`;
    const body = opts.body ?? frames.map((f) => (typeof f === 'string' ? f : JSON.stringify(f))).join('\n');
    return send(`${this.base}?t=send&sid=${this.sid}${q}`, { method: 'POST', body, headers: { 'Content-Type': 'text/plain' } });
  }

  /** One poll after `ack`; resolves with its answer's events. */
  async pollOnce(ack: number): Promise<{ status: number; events: SseEvent[] }> {
    const a = await send(`${this.base}?t=poll&sid=${this.sid}&ack=${ack}`);
    return { status: a.status, events: parseEvents(a.body).events };
  }

  /** Polls until `count` frames after `ack` have arrived; returns the events. */
  async pollFrames(ack: number, count: number): Promise<SseEvent[]> {
    const got: SseEvent[] = [];
    while (got.length < count) {
      const { status, events } = await this.pollOnce(got.at(-1)?.id ?? ack);
      if (status !== 200) throw new Error(`poll answered ${status}`);
      got.push(...events);
      if (events.some((e) => e.type === 'close')) break;
    }
    return got;
  }

  reattach(ack: number): Promise<{ status: number; headers: IncomingHttpHeaders; stream: SseStream }> {
    return openStream(`${this.base}?t=sse&sid=${this.sid}&ack=${ack}`);
  }
}
