import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';

const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** RFC 6455 §7.4.1: no close frame (here: the client vanished or the session was terminated). */
const ABNORMAL = 1006;

/** The stream or held poll that frames are written to right now. */
interface Reader {
  res: ServerResponse;
  kind: 'sse' | 'poll';
  /** Highest seq written to this reader. */
  written: number;
  timer: NodeJS.Timeout | null;
}

export interface HttpSocketTimes {
  /** A held poll is answered (empty) after this long. */
  pollHoldMs: number;
  /** An SSE stream gets a comment after this long without an event. */
  sseKeepaliveMs: number;
}

/**
 * One signaling connection over HTTP (Server-Sent Events or long-polling; PROTOCOL.md,
 * "HTTP transports"), shaped like the `ws` WebSocket a `Connection` holds, so every check,
 * limit and handler of the WebSocket path applies unchanged.
 *
 * Frames are numbered and kept until the client acknowledges them, so a dropped stream or
 * poll loses nothing: the next one starts after the client's ack. What is unacknowledged is
 * the socket's `bufferedAmount`, and the server's `maxBufferedBytes` bounds it as it bounds
 * a WebSocket's unsent backlog (a reader that stops acking is cast off with 1013).
 */
export class HttpSocket extends EventEmitter {
  readyState = OPEN;
  /** Unacknowledged events, already in the wire format, oldest first. */
  private readonly out: { seq: number; text: string; bytes: number; frame: string | null }[] = [];
  /**
   * Frames the client had not acknowledged when the session ended: the server queues them
   * for the session's resume, so a client that moves to another transport (after a final
   * ack) loses nothing and gets nothing twice.
   */
  leftover: string[] = [];
  private seq = 0;
  private unacked = 0;
  private reader: Reader | null = null;
  /** A request came since the last heartbeat ping (see ping). */
  private active = true;
  /** The last client batch handled (retries of it are ignored). */
  private batch = 0;
  private closeCode = ABNORMAL;
  private flushQueued = false;

  constructor(
    readonly sid: string,
    private readonly times: HttpSocketTimes,
    private readonly onGone: (socket: HttpSocket) => void,
  ) {
    super();
  }

  get bufferedAmount(): number {
    return this.unacked;
  }

  /**
   * Bytes not written to the client yet: frames waiting for a stream or poll, and what the
   * attached response still buffers. That is what a WebSocket's bufferedAmount means;
   * this socket's bufferedAmount also counts what was written but is not acknowledged yet
   * (an SSE client acks about once a second), which is memory held, not a backlog.
   */
  get unsentAmount(): number {
    const reader = this.reader;
    if (!reader) return this.unacked;
    let bytes = reader.res.writableLength;
    for (let i = this.out.length - 1; i >= 0; i--) {
      const e = this.out[i] as { seq: number; bytes: number };
      if (e.seq <= reader.written) break;
      bytes += e.bytes;
    }
    return bytes;
  }

  send(frame: string): void {
    if (this.readyState !== OPEN) return;
    this.push(`data: ${frame}\n\n`, frame);
  }

  /** Queues the close event; the socket is closed once it reached the client (or is terminated). */
  close(code = 1000, reason = ''): void {
    if (this.readyState !== OPEN) return;
    this.readyState = CLOSING;
    this.closeCode = code;
    // An event's data must not break the event: the reason is one line.
    this.push(`event: close\ndata: ${code} ${reason.replace(/[\r\n]/g, ' ')}\n\n`, null);
  }

  /** Ends the session at once (no close event reaches the client). */
  terminate(): void {
    this.finish(ABNORMAL);
  }

  /**
   * The heartbeat's ping: answered at once while the client shows signs of life (a stream
   * or poll attached, or any request since the last ping). A client that vanished shows none
   * and is terminated at the next heartbeat, like a WebSocket that missed its pong.
   */
  ping(): void {
    if (this.readyState === CLOSED) return;
    if (this.reader === null && !this.active) return;
    this.active = false;
    this.emit('pong');
  }

  /** Forgets what the client has received; false when `ack` is beyond what was sent. */
  ack(ack: number): boolean {
    if (!(ack <= this.seq)) return false;
    let drop = 0;
    while (drop < this.out.length && (this.out[drop] as { seq: number }).seq <= ack) this.unacked -= (this.out[drop++] as { bytes: number }).bytes;
    if (drop > 0) this.out.splice(0, drop);
    this.active = true;
    return true;
  }

  /**
   * Frames from the client (a POST body, one frame per line). Batch `n` was handled
   * already: a retry, ignored. Emitted as `message` like ws does with a text frame.
   */
  receive(n: number, body: string): void {
    this.active = true;
    if (n <= this.batch) return;
    this.batch = n;
    if (body === '') return;
    for (const line of body.split('\n')) {
      if (this.readyState !== OPEN) return;
      if (line !== '') this.emit('message', Buffer.from(line), false);
    }
  }

  /** The client closes the session (a POST with `close`). */
  clientClose(code: number): void {
    this.finish(code);
  }

  /** Attaches an SSE stream (the headers are written by the caller) after the client's ack. */
  attachStream(res: ServerResponse, after: number): void {
    this.attach({ res, kind: 'sse', written: after, timer: null });
    this.keepalive();
    this.flush();
  }

  /** Attaches a poll: answered now if there is anything after `after`, else held. */
  attachPoll(res: ServerResponse, after: number, holdMs = this.times.pollHoldMs): void {
    const reader: Reader = { res, kind: 'poll', written: after, timer: null };
    this.attach(reader);
    reader.timer = setTimeout(() => this.endReader(reader), holdMs);
    this.flush();
  }

  private attach(reader: Reader): void {
    this.active = true;
    if (this.reader) {
      // Said, so that whoever reads the old one for the client (another node streaming from
      // polls) stops instead of polling again and taking the reader back, over and over.
      if (!this.reader.res.writableEnded) this.reader.res.write('event: replaced\ndata: \n\n');
      this.endReader(this.reader);
    }
    this.reader = reader;
    reader.res.on('close', () => {
      if (this.reader === reader) this.endReader(reader);
    });
  }

  private endReader(reader: Reader): void {
    if (reader.timer) clearTimeout(reader.timer);
    reader.timer = null;
    if (this.reader === reader) {
      this.reader = null;
      // The client was there until now: it has a heartbeat interval to come back.
      this.active = true;
    }
    if (!reader.res.writableEnded) reader.res.end();
  }

  private push(text: string, frame: string | null): void {
    const seq = ++this.seq;
    const event = `id: ${seq}\n${text}`;
    const bytes = Buffer.byteLength(event);
    this.out.push({ seq, text: event, bytes, frame });
    this.unacked += bytes;
    // Frames of one tick leave in one write (a burst of trickled candidates, one chunk).
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    const reader = this.reader;
    if (!reader) return;
    let chunk = '';
    let closing = false;
    // From the first frame not yet written to this reader, found from the end: the frames
    // before it (written, not yet acked: up to a second of an SSE stream) are not walked again.
    let i = this.out.length;
    while (i > 0 && (this.out[i - 1] as { seq: number }).seq > reader.written) i--;
    for (const e of this.out.slice(i)) {
      chunk += e.text;
      reader.written = e.seq;
      if (e.frame === null) closing = true;
    }
    if (chunk !== '') {
      reader.res.write(chunk);
      if (reader.kind === 'poll') this.endReader(reader);
      else this.keepalive();
    }
    // The close event is on its way to the client: the session is over.
    if (closing) {
      this.endReader(reader);
      this.finish(this.closeCode);
    }
  }

  /** (Re)arms the stream's keepalive comment, so idle proxies never time it out. */
  private keepalive(): void {
    const reader = this.reader;
    if (reader?.kind !== 'sse') return;
    if (reader.timer) clearTimeout(reader.timer);
    reader.timer = setTimeout(() => {
      reader.timer = null;
      if (this.reader !== reader) return;
      reader.res.write(': k\n\n');
      this.keepalive();
    }, this.times.sseKeepaliveMs);
    reader.timer.unref();
  }

  private finish(code: number): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    if (this.reader) this.endReader(this.reader);
    for (const e of this.out) if (e.frame !== null) this.leftover.push(e.frame);
    this.out.length = 0;
    this.unacked = 0;
    this.onGone(this);
    this.emit('close', code);
  }
}
