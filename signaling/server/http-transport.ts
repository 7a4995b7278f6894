import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { SUBPROTOCOL, UPGRADE_REFUSALS, type UpgradeRefusal } from '../protocol/index.js';
import { HttpSocket, type HttpSocketTimes } from './http-socket.js';
import type { ResolvedOptions } from './options.js';
import type { ForwardedAnswer, ForwardedRequest } from './rooms.js';
import { originAllowed } from './upgrade.js';

/** What the signaling server does for the HTTP transports (see SignalingServer). */
export interface HttpTransportHost {
  readonly options: ResolvedOptions;
  /** Runs the upgrade-time checks (as for a WebSocket upgrade, `offered` for the subprotocol). */
  admit(req: IncomingMessage, url: URL, offered: boolean): Promise<{ ok: true; accept: (socket: HttpSocket) => void } | { ok: false; reason: UpgradeRefusal }>;
  /** This node's id in a cluster ('' alone): session ids end with `.<nodeId>`, so any node can tell where one lives. */
  readonly nodeId: string;
  /** Carries a request to the node holding its session (a cluster store's `forward`). */
  forward?(node: string, request: ForwardedRequest, timeoutMs: number): Promise<ForwardedAnswer | null>;
}

/** What the transports write answers to: an HTTP response, or a CapturedReply for another node. */
export interface Reply {
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
  writeHead(status: number, message: string, headers: Record<string, string>): unknown;
  flushHeaders(): void;
  write(chunk: string): unknown;
  end(chunk?: string): unknown;
  destroy(): unknown;
  on(event: 'close', listener: () => void): unknown;
}

/** An answer built for a request another node forwarded here; `done` resolves once it ended. */
class CapturedReply extends EventEmitter {
  readonly writableLength = 0;
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  private status = 200;
  private reason = '';
  private body = '';
  readonly done: Promise<ForwardedAnswer>;
  private settle: (a: ForwardedAnswer) => void = () => undefined;

  constructor() {
    super();
    this.done = new Promise((r) => (this.settle = r));
  }

  writeHead(status: number, _message: string, headers: Record<string, string>): this {
    this.headersSent = true;
    this.status = status;
    this.reason = headers['X-Rallypoint-Refusal'] ?? '';
    return this;
  }

  flushHeaders(): void {}

  write(chunk: string): boolean {
    this.body += chunk;
    return true;
  }

  end(chunk?: string): this {
    if (this.writableEnded) return this;
    if (chunk !== undefined) this.body += chunk;
    this.writableEnded = true;
    this.settle({ status: this.status, reason: this.reason, body: this.body });
    this.emit('close');
    return this;
  }

  destroy(): this {
    this.destroyed = true;
    return this.end();
  }
}

/** Transport parameter values (`?t=`). */
type Kind = 'sse' | 'poll' | 'send';

const NUM = /^(0|[1-9][0-9]{0,15})$/;

/** Headers every transport response carries: never cached, transformed or buffered by a proxy. */
const NO_CACHE = {
  'Cache-Control': 'no-cache, no-store, no-transform',
  // nginx buffers proxied responses unless told not to; this header tells it (per response).
  'X-Accel-Buffering': 'no',
};

/**
 * The signaling protocol over plain HTTP for clients whose WebSocket upgrade does not get
 * through (a proxy strips `Upgrade`, a middlebox goes silent after the handshake):
 * Server-Sent Events or long-polling downstream, POST upstream (PROTOCOL.md, "HTTP
 * transports"). Each session is an HttpSocket behind an ordinary Connection.
 */
/**
 * How long the holding node holds a poll forwarded by another node, and how much longer that
 * node waits for the answer before it takes the holder for gone (404, and the client resumes
 * elsewhere): a holder that dies mid-poll is noticed this soon, not after pollHoldMs.
 */
const FORWARDED_HOLD_MS = 3_000;
const FORWARD_WAIT_MS = FORWARDED_HOLD_MS + 2_000;

/** POSTs of one session read at once (the client sends one at a time, and its closing one). */
const MAX_POSTS_IN_FLIGHT = 2;

export class HttpTransports {
  private readonly sessions = new Map<string, HttpSocket>();
  /** POST bodies being read or forwarded, by session id (see MAX_POSTS_IN_FLIGHT). */
  private readonly posting = new Map<string, number>();
  /** SSE streams this node serves for sessions held elsewhere: one per session. */
  private readonly streams = new Map<string, ServerResponse>();
  private readonly times: HttpSocketTimes;

  constructor(private readonly host: HttpTransportHost) {
    const { limits } = host.options;
    this.times = { pollHoldMs: limits.pollHoldMs, sseKeepaliveMs: limits.sseKeepaliveMs };
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Handles a request on the signaling path that is not a WebSocket upgrade. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const cors = this.cors(req);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...cors, 'Access-Control-Allow-Methods': 'GET, POST', 'Access-Control-Max-Age': '600' }).end();
      return;
    }
    const t = url.searchParams.get('t');
    const kind: Kind | null = t === 'sse' || t === 'poll' || t === 'send' ? t : null;
    if (kind === null) {
      // A WebSocket upgrade whose Upgrade header a proxy stripped arrives as a plain GET.
      return refuse(res, cors, 426, 'bad-request', 'upgrade required: use a WebSocket, or ?t=sse or ?t=poll');
    }
    if ((kind === 'send') !== (req.method === 'POST') || (req.method !== 'GET' && req.method !== 'POST')) {
      return refuse(res, cors, 405, 'bad-request', 'GET for t=sse and t=poll, POST for t=send');
    }
    const sid = url.searchParams.get('sid');
    if (sid === null) {
      if (kind === 'send') return refuse(res, cors, 400, 'bad-request', 'sid missing');
      void this.open(req, res, url, kind, cors);
      return;
    }
    const socket = this.sessions.get(sid);
    if (!socket) {
      const node = sid.includes('.') ? sid.slice(sid.indexOf('.') + 1) : '';
      if (node !== '' && node !== this.host.nodeId && this.host.forward) return void this.remote(req, res, url, kind, node, cors);
      return refuse(res, cors, 404, 'unknown-session', 'no such session (it ended, or lives on a node that is gone)');
    }
    if (kind !== 'send') return this.local(socket, kind, url.searchParams, '', res, cors);
    void this.readBody(sid, req, res, cors).then((body) => body !== null && this.local(socket, kind, url.searchParams, body, res, cors));
  }

  /** A request for a session held here (from its client, or forwarded by another node). */
  private local(socket: HttpSocket, kind: Kind, params: URLSearchParams, body: string, res: Reply, cors: Record<string, string>): void {
    const ack = num(params.get('ack') ?? '0');
    if (ack === null || !socket.ack(ack)) return refuse(res, cors, 400, 'bad-request', 'ack: a seq this session sent');
    if (kind === 'send') return this.send(socket, params, body, res, cors);
    // `after`: where to start when it is not the ack (another node streaming for its client).
    const after = params.has('after') ? num(params.get('after') ?? '') : ack;
    if (after === null) return refuse(res, cors, 400, 'bad-request', 'after: a seq');
    streamHeaders(res, kind, cors);
    // HttpSocket writes to a reader through what Reply has (an answer for another node too).
    const hold = params.has('hold') ? Math.min(num(params.get('hold') ?? '') ?? 0, this.host.options.limits.pollHoldMs) : undefined;
    if (kind === 'sse') socket.attachStream(res as unknown as ServerResponse, after);
    else socket.attachPoll(res as unknown as ServerResponse, after, hold || undefined);
  }

  /** Answers a request that another node forwarded here (its load balancer sent it there). */
  answer(request: ForwardedRequest): Promise<ForwardedAnswer> {
    const params = new URLSearchParams(request.query);
    const socket = this.sessions.get(params.get('sid') ?? '');
    const reply = new CapturedReply();
    if (!socket) refuse(reply, {}, 404, 'unknown-session', 'no such session');
    else this.local(socket, request.kind, params, request.body, reply, {});
    return reply.done;
  }

  /**
   * A request for a session held by another node: carried there through the cluster store.
   * An SSE stream is served here from polls forwarded one after another, so nothing has to
   * stick to the node that holds the session.
   */
  private async remote(req: IncomingMessage, res: ServerResponse, url: URL, kind: Kind, node: string, cors: Record<string, string>): Promise<void> {
    const forward = this.host.forward as NonNullable<HttpTransportHost['forward']>;
    const wait = FORWARD_WAIT_MS;
    const sid = url.searchParams.get('sid') ?? '';
    if (kind === 'send') {
      const body = await this.readBody(sid, req, res, cors, true);
      if (body === null) return;
      const a = await forward(node, { kind, query: url.search, body }, wait).finally(() => this.donePosting(sid));
      if (a?.status !== 204) return refuse(res, cors, a?.status ?? 404, a?.reason ?? 'unknown-session', a ? "refused by the session's node" : "the session's node is gone");
      res.writeHead(204, 'No Content', { ...cors, ...NO_CACHE });
      res.end();
      return;
    }
    const params = new URLSearchParams(url.search);
    if (kind === 'poll') {
      params.set('hold', String(FORWARDED_HOLD_MS));
      const a = await forward(node, { kind, query: `?${params}`, body: '' }, wait);
      if (a?.status !== 200) return refuse(res, cors, a?.status ?? 404, a?.reason ?? 'unknown-session', "the session's node is gone");
      streamHeaders(res, 'poll', cors);
      res.end(a.body);
      return;
    }
    let after = params.get('ack') ?? '0';
    let ack = after;
    let open = false;
    // A newer stream for the session here ends this one (as the holding node does).
    this.streams.get(sid)?.end();
    this.streams.set(sid, res);
    res.on('close', () => this.streams.get(sid) === res && this.streams.delete(sid));
    while (!res.destroyed && !res.writableEnded) {
      const q = new URLSearchParams({ t: 'poll', sid, ack, after, hold: String(FORWARDED_HOLD_MS) });
      const a = await forward(node, { kind: 'poll', query: `?${q}`, body: '' }, wait);
      if (a?.status !== 200) {
        if (!open) return refuse(res, cors, a?.status ?? 404, a?.reason ?? 'unknown-session', "the session's node is gone");
        res.end();
        return;
      }
      if (!open) streamHeaders(res, 'sse', cors);
      open = true;
      ack = '0'; // told once; later acks come with the client's POSTs
      const ids = [...a.body.matchAll(/^id: (\d+)$/gm)];
      after = ids.at(-1)?.[1] ?? after;
      res.write(a.body === '' ? ': k\n\n' : a.body);
      // The session closed, or another reader (a newer stream or poll of the client) took over.
      if (/^event: (close|replaced)$/m.test(a.body)) res.end();
    }
  }

  /**
   * A POST body, bounded before and while it is read, and at most MAX_POSTS_IN_FLIGHT per
   * session at once (so one session cannot make the server buffer bodies without bound);
   * null when refused (answered already). `keep`: the caller ends the count (donePosting).
   */
  private async readBody(sid: string, req: IncomingMessage, res: ServerResponse, cors: Record<string, string>, keep = false): Promise<string | null> {
    const max = this.host.options.limits.maxPostBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) {
      refuse(res, cors, 413, 'too-large', `body over ${max} bytes`);
      return null;
    }
    const busy = this.posting.get(sid) ?? 0;
    if (busy >= MAX_POSTS_IN_FLIGHT) {
      refuse(res, cors, 429, 'busy', `more than ${MAX_POSTS_IN_FLIGHT} POSTs of this session at once`);
      return null;
    }
    this.posting.set(sid, busy + 1);
    const body = await this.bodyOf(req, res, cors, max);
    if (!keep || body === null) this.donePosting(sid);
    return body;
  }

  private donePosting(sid: string): void {
    const n = (this.posting.get(sid) ?? 1) - 1;
    if (n <= 0) this.posting.delete(sid);
    else this.posting.set(sid, n);
  }

  private bodyOf(req: IncomingMessage, res: ServerResponse, cors: Record<string, string>, max: number): Promise<string | null> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > max) {
          refuse(res, cors, 413, 'too-large', `body over ${max} bytes`);
          req.destroy();
          resolve(null);
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => size <= max && resolve(Buffer.concat(chunks).toString('utf8')));
      // A client that goes away mid-body: nothing to answer.
      req.on('close', () => resolve(null));
      req.on('error', () => resolve(null));
    });
  }

  private async open(req: IncomingMessage, res: ServerResponse, url: URL, kind: 'sse' | 'poll', cors: Record<string, string>): Promise<void> {
    const admitted = await this.host.admit(req, url, url.searchParams.get('v') === SUBPROTOCOL);
    if (!admitted.ok) return refuse(res, cors, UPGRADE_REFUSALS[admitted.reason], admitted.reason, admitted.reason);
    if (res.destroyed) return;
    const sid = randomBytes(16).toString('base64url') + (this.host.nodeId === '' ? '' : `.${this.host.nodeId}`);
    const socket = new HttpSocket(sid, this.times, (s) => this.sessions.delete(s.sid));
    this.sessions.set(sid, socket);
    streamHeaders(res, kind, cors);
    const { maxPostBytes, pollHoldMs } = this.host.options.limits;
    // Written before the session can queue anything: the open event comes first.
    res.write(`event: open\ndata: ${JSON.stringify({ sid, maxPostBytes, pollHoldMs })}\n\n`);
    if (kind === 'sse') socket.attachStream(res, 0);
    else res.end();
    admitted.accept(socket);
  }

  /** A POST of frames (and ack, or close) from the client. */
  private send(socket: HttpSocket, params: URLSearchParams, body: string, res: Reply, cors: Record<string, string>): void {
    const n = num(params.get('n') ?? '');
    const close = params.get('close');
    const closeCode = close === null ? null : num(close);
    if (n === null || (close !== null && (closeCode === null || !validClientClose(closeCode)))) return refuse(res, cors, 400, 'bad-request', 'n: batch number; close: 1000 or 4000-4999');
    socket.receive(n, body);
    if (closeCode !== null) socket.clientClose(closeCode);
    res.writeHead(204, 'No Content', { ...cors, ...NO_CACHE });
    res.end();
  }

  /** CORS for cross-origin pages: only what the Origin check allows, and nothing else. */
  private cors(req: IncomingMessage): Record<string, string> {
    const origin = req.headers.origin;
    if (origin === undefined || !originAllowed(req, this.host.options.allowedOrigins)) return {};
    return { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
  }

  /** Ends every session (the server is closing; their connections were closed already). */
  close(): void {
    for (const s of [...this.sessions.values()]) s.terminate();
  }
}

function num(s: string): number | null {
  return NUM.test(s) ? Number(s) : null;
}

/** 1000 ends the session; 4000-4999 (the client's own reasons) keep it for resume. */
function validClientClose(code: number): boolean {
  return code === 1000 || (code >= 4000 && code <= 4999);
}

function streamHeaders(res: Reply, kind: 'sse' | 'poll', cors: Record<string, string>): void {
  res.writeHead(200, 'OK', {
    ...cors,
    ...NO_CACHE,
    'Content-Type': kind === 'sse' ? 'text/event-stream; charset=utf-8' : 'text/plain; charset=utf-8',
  });
  // The headers now, not with the first event: the client's transport probe is waiting.
  res.flushHeaders();
}

function refuse(res: Reply, cors: Record<string, string>, status: number, reason: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Said before the body may have been read: this connection is not reused.
  res.writeHead(status, STATUS_CODES[status] ?? '', { ...cors, ...NO_CACHE, Connection: 'close', 'Content-Type': 'text/plain; charset=utf-8', 'X-Rallypoint-Refusal': reason });
  res.end(`${message}\n`);
}
