import { SUBPROTOCOL } from '../protocol/constants.js';
import type { WebSocketLike } from './client.js';

export type HttpKind = 'sse' | 'poll';
export type FetchLike = typeof fetch;

/** Failed requests in a row (a stream, poll or POST) before the session counts as lost. */
const TRIES = 3;

/**
 * The signaling connection over plain HTTP (PROTOCOL.md, "HTTP transports"), shaped like
 * the WebSocket the client uses: Server-Sent Events (a streamed GET) or long-polls down,
 * POSTs up. Frames come numbered and are acknowledged, so a dropped stream or poll is
 * picked up where it stopped; the frames of one tick go up in one POST, one POST at a time.
 */
export class HttpSocket implements WebSocketLike {
  readyState = 0;
  bufferedAmount = 0;
  // Set by the client before anything can happen (no initializers: bytes in the bundle).
  declare onopen: ((ev: unknown) => void) | null;
  declare onmessage: ((ev: { data: unknown }) => void) | null;
  declare onclose: ((ev: { code: number; reason: string }) => void) | null;
  declare onerror: ((ev: unknown) => void) | null;
  /** Settles when the closing POST (with the final ack) got its answer. */
  done: Promise<unknown> | undefined;
  #sid = '';
  /** Highest seq received, and the last one told to the server. */
  #ack = 0;
  #told = 0;
  /** Characters received since the ack was last told (SSE acks early past 1e5, see #event). */
  #got = 0;
  #n = 0;
  #max = 65536;
  #out: string[] = [];
  /** The POST in flight: the next one (and the closing one) waits for it, so they arrive in order. */
  #posting: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Ends the event stream (and polls) at the session's end. */
  readonly #abort = new AbortController();
  /**
   * Ends POSTs in flight, except at an orderly close(): a POST aborted after the server took
   * it, then sent again in the closing POST, would deliver its frames twice.
   */
  readonly #abortPosts = new AbortController();
  /** The URL up to where this transport's own parameters start. */
  readonly #base: string;
  readonly #kind: HttpKind;
  readonly #fetch: FetchLike;

  constructor(url: string, kind: HttpKind, fetcher: FetchLike) {
    this.#base = url + (url.includes('?') ? '&' : '?');
    this.#kind = kind;
    this.#fetch = fetcher;
    void this.#read(`${this.#base}t=${kind}&v=${SUBPROTOCOL}`);
  }

  /** The URL of a request of this session (`t`: sse, poll or send), with the ack. */
  #url(t: string): string {
    this.#got = 0;
    this.#told = this.#ack;
    return `${this.#base}t=${t}&sid=${this.#sid}&ack=${this.#ack}`;
  }

  send(data: string): void {
    if (this.readyState !== 1) return;
    this.#out.push(data);
    this.bufferedAmount += data.length;
    // The frames of this tick go together.
    if (this.#out.length === 1) queueMicrotask(() => this.#post());
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState > 1) return;
    const open = this.readyState === 1;
    this.readyState = 2;
    // Tells the server what arrived (it queues the rest for a resume) and how we left.
    // Not aborted with the rest: it goes out after the POST in flight, whatever happens here.
    if (open) this.done = (this.#posting ?? Promise.resolve()).then(() => this.#req(`&n=${++this.#n}&close=${code}`, this.#out.join('\n'), false)).catch(() => undefined);
    this.#end(code, reason, open);
  }

  /** `orderly`: close() sends what is left after the POST in flight, which it lets finish. */
  #end(code: number, reason: string, orderly = false): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    clearTimeout(this.#timer);
    this.#abort.abort();
    if (!orderly) this.#abortPosts.abort();
    this.onclose?.({ code, reason });
  }

  /** One request of this session; `q` is the rest of the query. */
  /**
   * A POST of frames. A string body goes as text/plain: a CORS simple request, never
   * preflighted. (Nothing is cached: the server says no-store on every answer.)
   */
  #req(q: string, body: string, abortable = true): Promise<Response> {
    return this.#fetch(this.#url('send') + q, { method: 'POST', body, ...(abortable && { signal: this.#abortPosts.signal }) });
  }

  #post(): void {
    if (this.#posting || this.readyState !== 1) return;
    this.#posting = this.#batch().finally(() => {
      this.#posting = null;
      if (this.readyState === 1 && (this.#out.length > 0 || this.#ack > this.#told)) this.#post();
    });
  }

  async #batch(): Promise<void> {
    let body = '';
    let taken = 0;
    // One batch, below the server's bound (a frame alone may exceed it: the server says so).
    while (taken < this.#out.length && (taken === 0 || body.length + (this.#out[taken] as string).length < this.#max)) body += (taken++ ? '\n' : '') + this.#out[taken - 1];
    const q = `&n=${++this.#n}`;
    for (let i = 0; ; i++) {
      try {
        const res = await this.#req(q, body);
        if (res.status !== 204) return this.#end(1006, '');
        break;
      } catch {
        if (this.readyState !== 1) return;
        if (i === TRIES) return this.#end(1006, '');
      }
    }
    for (const s of this.#out.splice(0, taken)) this.bufferedAmount -= s.length;
  }

  /** Streams (or polls) events from `url` until the session ends; reattaches after a drop. */
  async #read(url: string): Promise<void> {
    for (let fails = 0; this.readyState < 2; ) {
      try {
        const res = await this.#fetch(url, { signal: this.#abort.signal });
        if (!res.ok) return this.#end(1006, '');
        fails = 0;
        const reader = (res.body as ReadableStream<BufferSource>).pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            this.#event(buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
        }
      } catch {
        if (this.readyState > 1 || ++fails > TRIES) return this.#end(1006, '');
      }
      url = this.#url(this.#kind);
    }
  }

  /** One event: `id:`, `event:` and `data:` lines (comments, `:`, keep proxies awake). */
  #event(block: string): void {
    let id = 0;
    let type = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      // The server writes only `id`, `event`, `data` and comments (`:`), one of each at most.
      const v = line.slice(line.indexOf(': ') + 2);
      if (line[0] === 'i') id = +v;
      else if (line[0] === 'e') type = v;
      else if (line[0] === 'd') data = v;
    }
    if (type === 'open') {
      const o = JSON.parse(data) as { sid: string; maxPostBytes: number };
      this.#sid = o.sid;
      this.#max = o.maxPostBytes;
      this.readyState = 1;
      this.onopen?.(null);
      return;
    }
    if (id <= this.#ack) return; // seen before a drop
    this.#ack = id;
    if (type === 'close') {
      const c = data.indexOf(' ');
      return this.#end(+data.slice(0, c), data.slice(c + 1));
    }
    this.onmessage?.({ data });
    // An SSE stream never asks for more: tell the server what arrived within a second, and
    // at once past ~100 kB: it counts what is unacked against maxBufferedBytes (4 MiB) and
    // closes a reader over it as slow (1013), however fast that reader reads.
    if (this.#kind === 'sse') {
      this.#got += data.length;
      if (this.#got > 1e5) this.#post();
      else
        this.#timer ??= setTimeout(() => {
          this.#timer = undefined;
          if (this.#ack > this.#told) this.#post();
        }, 1000);
    }
  }
}
