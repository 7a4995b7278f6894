import { randomBytes } from 'node:crypto';
import { type ClientOptions, WebSocket } from 'ws';
import { decodeServerMessage, type ServerMessage, SUBPROTOCOL, type WelcomeMessage } from '../../signaling/protocol/index.js';
import { defer } from './resources.js';

export type FrameType = ServerMessage['type'];
export type FrameOf<T extends FrameType> = Extract<ServerMessage, { type: T }>;
export interface CloseInfo {
  code: number;
  reason: string;
}

export interface ConnectOptions {
  /** Subprotocols to offer; default `rallypoint.v1`; `[]` offers none. */
  protocols?: string[];
  headers?: Record<string, string>;
  origin?: string;
  /** false: the client does not answer pings (a dead peer for the heartbeat). */
  autoPong?: boolean;
  /** Frames that are not rallypoint.v1 are expected (talking to another server). */
  allowInvalidFrames?: boolean;
}

interface Waiter {
  type: FrameType | null;
  resolve: (m: ServerMessage) => void;
  reject: (e: Error) => void;
}

/**
 * A raw `ws` client speaking rallypoint.v1 by hand. Every frame is checked against the
 * ServerMessage schema (a non-conforming frame fails the waiting test); frames queue until
 * a test takes them with `next(type)`.
 */
export class TestClient {
  /** Every frame received, in order. */
  readonly received: ServerMessage[] = [];
  /** Frames that did not decode as ServerMessage (should stay empty). */
  readonly invalid: string[] = [];
  readonly closed: Promise<CloseInfo>;
  closeInfo: CloseInfo | null = null;
  /** Payload bytes of the messages sent and received (not counting WebSocket framing). */
  bytesSent = 0;
  bytesReceived = 0;
  private readonly queue: ServerMessage[] = [];
  private waiters: Waiter[] = [];
  private pings = 0;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters.splice(0)) w.reject(new Error(`socket closed (${code} ${reason.toString()}) while waiting for ${w.type ?? 'a frame'}`));
        resolve(this.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => {
      this.bytesReceived += (data as Buffer).byteLength;
      const text = isBinary ? '<binary>' : (data as Buffer).toString('utf8');
      const decoded = decodeServerMessage(text);
      if (!decoded.ok) {
        this.invalid.push(text);
        for (const w of this.waiters.splice(0)) w.reject(new Error(`server sent a frame that is not rallypoint.v1: ${text}`));
        return;
      }
      this.received.push(decoded.message);
      const i = this.waiters.findIndex((w) => w.type === null || w.type === decoded.message.type);
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        w?.resolve(decoded.message);
      } else {
        this.queue.push(decoded.message);
      }
    });
    // Errors surface as close codes (e.g. 1006/1009); tests assert on those.
    ws.on('error', () => {});
  }

  /** Opens a connection; resolves once it is open (rejects if the upgrade fails). */
  static connect(url: string, opts: ConnectOptions = {}): Promise<TestClient> {
    const options: ClientOptions = { autoPong: opts.autoPong ?? true };
    if (opts.headers) options.headers = opts.headers;
    if (opts.origin) options.origin = opts.origin;
    const ws = new WebSocket(url, opts.protocols ?? [SUBPROTOCOL], options);
    const client = new TestClient(ws);
    defer(async () => {
      await client.destroy();
      // Every frame the server sent must have been valid rallypoint.v1, whatever the test awaited.
      if (!opts.allowInvalidFrames && client.invalid.length > 0) throw new Error(`server sent frames that are not rallypoint.v1: ${client.invalid.join(' | ')}`);
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        reject(new Error(`upgrade refused with ${res.statusCode ?? '?'}`));
        ws.terminate();
      });
      ws.once('error', reject);
    });
  }

  send(message: unknown): void {
    this.sendRaw(JSON.stringify(message));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.bytesSent += Buffer.byteLength(data);
    this.ws.send(data, { binary });
  }

  /** Takes the oldest queued frame of `type` (or of any type), waiting for it if needed. */
  next<T extends FrameType>(type: T): Promise<FrameOf<T>>;
  next(): Promise<ServerMessage>;
  next(type: FrameType | null = null): Promise<ServerMessage> {
    const i = this.queue.findIndex((m) => type === null || m.type === type);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0] as ServerMessage);
    if (this.closeInfo) return Promise.reject(new Error(`socket already closed (${this.closeInfo.code}) while waiting for ${type ?? 'a frame'}`));
    return new Promise((resolve, reject) => this.waiters.push({ type, resolve, reject }));
  }

  /** Frames received but not taken yet (optionally of one type). */
  pending(type?: FrameType): ServerMessage[] {
    return this.queue.filter((m) => type === undefined || m.type === type);
  }

  /** Takes (removes) every queued frame of `type`. */
  drain<T extends FrameType>(type: T): FrameOf<T>[] {
    const taken: FrameOf<T>[] = [];
    for (let i = 0; i < this.queue.length; ) {
      const m = this.queue[i] as ServerMessage;
      if (m.type === type) {
        taken.push(m as FrameOf<T>);
        this.queue.splice(i, 1);
      } else i++;
    }
    return taken;
  }

  /**
   * A barrier: pings the server and waits for the pong. The server answers in order on this
   * socket, so every frame it sent before it processed the ping has arrived by then.
   */
  async sync(): Promise<void> {
    const payload = Buffer.from(`sync-${++this.pings}-${randomBytes(4).toString('hex')}`);
    const pong = new Promise<void>((resolve, reject) => {
      const onPong = (data: Buffer): void => {
        if (!data.equals(payload)) return;
        this.ws.off('pong', onPong);
        this.ws.off('close', onClose);
        resolve();
      };
      const onClose = (): void => {
        this.ws.off('pong', onPong);
        reject(new Error('socket closed during sync'));
      };
      this.ws.on('pong', onPong);
      this.ws.once('close', onClose);
    });
    this.ws.ping(payload);
    await pong;
  }

  /** Sends `join` and waits for the welcome. */
  async join(room: string, extra: Record<string, unknown> = {}): Promise<WelcomeMessage> {
    this.send({ type: 'join', room, ...extra });
    return this.next('welcome');
  }

  /** Sends a message that must be refused and returns the error frame. */
  async expectError(message: unknown): Promise<FrameOf<'error'>> {
    this.send(message);
    return this.next('error');
  }

  /** Closes with a closing handshake and waits for the close event. */
  async close(code?: number): Promise<CloseInfo> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code);
    return this.closed;
  }

  /** Drops the TCP connection without a closing handshake (the server sees 1006). */
  async terminate(): Promise<CloseInfo> {
    this.ws.terminate();
    return this.closed;
  }

  /** Cleanup: ends the socket whatever state it is in. */
  async destroy(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.terminate();
    await this.closed;
  }
}
