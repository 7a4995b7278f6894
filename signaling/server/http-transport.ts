import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { SUBPROTOCOL, UPGRADE_REFUSALS, type UpgradeRefusal } from '../protocol/index.js';
import { HttpSocket, type HttpSocketTimes } from './http-socket.js';
import { originAllowed } from './upgrade.js';
import type { ResolvedOptions } from './options.js';

/** What the signaling server does for the HTTP transports (see SignalingServer). */
export interface HttpTransportHost {
  readonly options: ResolvedOptions;
  /** Runs the upgrade-time checks (as for a WebSocket upgrade, `offered` for the subprotocol). */
  admit(req: IncomingMessage, url: URL, offered: boolean): Promise<{ ok: true; accept: (socket: HttpSocket) => void } | { ok: false; reason: UpgradeRefusal }>;
  /** Suffix of session ids (`.<nodeId>` in a cluster, so any node can tell where one lives). */
  readonly sidSuffix: string;
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
export class HttpTransports {
  private readonly sessions = new Map<string, HttpSocket>();
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
    if (!socket) return refuse(res, cors, 404, 'unknown-session', 'no such session (it ended, or lives on a node that is gone)');
    const ack = num(url.searchParams.get('ack') ?? '0');
    if (ack === null || !socket.ack(ack)) return refuse(res, cors, 400, 'bad-request', 'ack: a seq this session sent');
    if (kind === 'send') return this.send(req, res, url, socket, cors);
    streamHeaders(res, kind, cors);
    if (kind === 'sse') socket.attachStream(res, ack);
    else socket.attachPoll(res, ack);
  }

  private async open(req: IncomingMessage, res: ServerResponse, url: URL, kind: 'sse' | 'poll', cors: Record<string, string>): Promise<void> {
    const admitted = await this.host.admit(req, url, url.searchParams.get('v') === SUBPROTOCOL);
    if (!admitted.ok) return refuse(res, cors, UPGRADE_REFUSALS[admitted.reason], admitted.reason, admitted.reason);
    if (res.destroyed) return;
    const sid = randomBytes(16).toString('base64url') + this.host.sidSuffix;
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

  /** A POST of frames (and ack, or close) from the client. Its body is bounded before it is read. */
  private send(req: IncomingMessage, res: ServerResponse, url: URL, socket: HttpSocket, cors: Record<string, string>): void {
    const n = num(url.searchParams.get('n') ?? '');
    const close = url.searchParams.get('close');
    const closeCode = close === null ? null : num(close);
    if (n === null || (close !== null && (closeCode === null || !validClientClose(closeCode)))) return refuse(res, cors, 400, 'bad-request', 'n: batch number; close: 1000 or 4000-4999');
    const max = this.host.options.limits.maxPostBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) return refuse(res, cors, 413, 'too-large', `body over ${max} bytes`);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        refuse(res, cors, 413, 'too-large', `body over ${max} bytes`);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > max) return;
      socket.receive(n, Buffer.concat(chunks).toString('utf8'));
      if (closeCode !== null) socket.clientClose(closeCode);
      res.writeHead(204, { ...cors, ...NO_CACHE }).end();
    });
    req.on('error', () => undefined);
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

function streamHeaders(res: ServerResponse, kind: 'sse' | 'poll', cors: Record<string, string>): void {
  res.writeHead(200, {
    ...cors,
    ...NO_CACHE,
    'Content-Type': kind === 'sse' ? 'text/event-stream; charset=utf-8' : 'text/plain; charset=utf-8',
  });
  // The headers now, not with the first event: the client's transport probe is waiting.
  res.flushHeaders();
}

function refuse(res: ServerResponse, cors: Record<string, string>, status: number, reason: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Said before the body may have been read: this connection is not reused.
  res.writeHead(status, STATUS_CODES[status] ?? '', { ...cors, ...NO_CACHE, Connection: 'close', 'Content-Type': 'text/plain; charset=utf-8', 'X-Rallypoint-Refusal': reason }).end(`${message}\n`);
}
