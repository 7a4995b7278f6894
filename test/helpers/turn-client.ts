/**
 * A minimal TURN client over UDP for tests (RFC 8489 long-term credentials, RFC 8656 methods).
 * Every client registers its socket's close with `defer`.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { decodeXorAddress, encode, encodeXorAddress, longTermKey, StunAttr, type StunAttribute, StunClass, type StunMessage, StunMethod, type TransportAddress } from '../../turn/codec.js';
import { defer } from './resources.js';
import { decode, getAttr, isChannelData } from './stun-codec.js';

export interface Response {
  msg: StunMessage;
  raw: Buffer;
}

export interface Received {
  channel?: number;
  peer?: TransportAddress;
  data: Buffer;
}

export function errorCode(msg: StunMessage): number | undefined {
  const v = getAttr(msg, StunAttr.errorCode);
  return v ? (v[2]! & 7) * 100 + v[3]! : undefined;
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

export class TurnTestClient {
  readonly socket: dgram.Socket;
  key: Buffer | undefined;
  realm: string | undefined;
  nonce: string | undefined;
  private readonly pending = new Map<string, (r: Response) => void>();
  private readonly received: Received[] = [];
  private readonly waiters: ((r: Received) => void)[] = [];

  private constructor(
    readonly server: TransportAddress,
    readonly username: string,
    readonly password: string,
    socket: dgram.Socket,
  ) {
    this.socket = socket;
    socket.on('message', (buf) => this.onPacket(buf));
  }

  /** `bindAddress` (default the loopback of the server's family) is the client's source address. */
  static async open(server: TransportAddress, username: string, password: string, bindAddress?: string): Promise<TurnTestClient> {
    const socket = dgram.createSocket(isIPv6(server.address) ? 'udp6' : 'udp4');
    defer(() => new Promise<void>((r) => socket.close(() => r())));
    await new Promise<void>((r) => socket.bind(0, bindAddress ?? (isIPv6(server.address) ? '::1' : '127.0.0.1'), () => r()));
    return new TurnTestClient(server, username, password, socket);
  }

  private onPacket(buf: Buffer): void {
    if (isChannelData(buf)) {
      const len = buf.readUInt16BE(2);
      return this.push({ channel: buf.readUInt16BE(0), data: Buffer.from(buf.subarray(4, 4 + len)) });
    }
    let msg: StunMessage;
    try {
      msg = decode(buf);
    } catch {
      return;
    }
    if (msg.cls === StunClass.indication && msg.method === StunMethod.data) {
      const peer = getAttr(msg, StunAttr.xorPeerAddress);
      const data = getAttr(msg, StunAttr.data);
      if (peer && data) this.push({ peer: decodeXorAddress(peer, msg.transactionId), data: Buffer.from(data) });
      return;
    }
    this.pending.get(msg.transactionId.toString('hex'))?.({ msg, raw: buf });
  }

  private push(r: Received): void {
    const w = this.waiters.shift();
    if (w) w(r);
    else this.received.push(r);
  }

  /** The next relayed datagram (Data indication or ChannelData). */
  nextData(): Promise<Received> {
    const r = this.received.shift();
    if (r) return Promise.resolve(r);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  sendRaw(buf: Buffer): void {
    this.socket.send(buf, this.server.port, this.server.address);
  }

  /** Sends a message built by `build` (given a fresh transaction id) and awaits its response. */
  transact(build: (transactionId: Buffer) => Buffer): Promise<Response> {
    const transactionId = randomBytes(12);
    const done = new Promise<Response>((resolve) => this.pending.set(transactionId.toString('hex'), resolve));
    this.sendRaw(build(transactionId));
    return done.finally(() => this.pending.delete(transactionId.toString('hex')));
  }

  /** An authenticated request (or unauthenticated with auth=false); retries once on 401/438 with the new nonce. */
  async request(method: number, attrs: StunAttribute[] | ((transactionId: Buffer) => StunAttribute[]), opts: { auth?: boolean; fingerprint?: boolean } = {}): Promise<Response> {
    const auth = opts.auth ?? true;
    const build = typeof attrs === 'function' ? attrs : () => attrs;
    const send = (): Promise<Response> =>
      this.transact((transactionId) =>
        encode(
          {
            method,
            cls: StunClass.request,
            transactionId,
            attributes: auth ? [...build(transactionId), ...this.authAttrs()] : build(transactionId),
          },
          { key: auth ? this.key : undefined, fingerprint: opts.fingerprint },
        ),
      );
    let res = await send();
    const code = errorCode(res.msg);
    if (auth && (code === 401 || code === 438) && this.learn(res.msg)) res = await send();
    return res;
  }

  /**
   * A request signed with this client's credentials and current nonce, as bytes (what an
   * on-path observer captures, or what a test sends raw, without waiting for an answer).
   */
  signed(method: number, attrs: StunAttribute[], transactionId: Buffer = randomBytes(12)): Buffer {
    return encode({ method, cls: StunClass.request, transactionId, attributes: [...attrs, ...this.authAttrs()] }, { key: this.key });
  }

  private authAttrs(): StunAttribute[] {
    if (!this.realm || !this.nonce) return [];
    return [
      { type: StunAttr.username, value: Buffer.from(this.username) },
      { type: StunAttr.realm, value: Buffer.from(this.realm) },
      { type: StunAttr.nonce, value: Buffer.from(this.nonce) },
    ];
  }

  /** Takes REALM and NONCE from a 401/438; true if they changed. */
  learn(msg: StunMessage): boolean {
    const realm = getAttr(msg, StunAttr.realm)?.toString();
    const nonce = getAttr(msg, StunAttr.nonce)?.toString();
    if (!realm || !nonce || (realm === this.realm && nonce === this.nonce)) return false;
    this.realm = realm;
    this.nonce = nonce;
    this.key = longTermKey(this.username, realm, this.password);
    return true;
  }

  async allocate(lifetime?: number): Promise<{ res: Response; relayed: TransportAddress; lifetime: number }> {
    const attrs: StunAttribute[] = [{ type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) }];
    if (lifetime !== undefined) attrs.push({ type: StunAttr.lifetime, value: u32(lifetime) });
    const res = await this.request(StunMethod.allocate, attrs);
    if (res.msg.cls !== StunClass.success) throw new Error(`allocate failed: ${errorCode(res.msg)}`);
    const relayed = decodeXorAddress(getAttr(res.msg, StunAttr.xorRelayedAddress)!, res.msg.transactionId);
    return { res, relayed, lifetime: getAttr(res.msg, StunAttr.lifetime)!.readUInt32BE(0) };
  }

  async refresh(lifetime?: number): Promise<Response> {
    const attrs = lifetime === undefined ? [] : [{ type: StunAttr.lifetime, value: u32(lifetime) }];
    return this.request(StunMethod.refresh, attrs);
  }

  createPermission(peer: TransportAddress): Promise<Response> {
    return this.request(StunMethod.createPermission, (tid) => [{ type: StunAttr.xorPeerAddress, value: encodeXorAddress(peer, tid) }]);
  }

  channelBind(channel: number, peer: TransportAddress): Promise<Response> {
    return this.request(StunMethod.channelBind, (tid) => [
      { type: StunAttr.channelNumber, value: u32(channel << 16) },
      { type: StunAttr.xorPeerAddress, value: encodeXorAddress(peer, tid) },
    ]);
  }

  /** Send indication (RFC 8656 section 10.1). */
  sendIndication(peer: TransportAddress, data: Buffer): void {
    const transactionId = randomBytes(12);
    this.sendRaw(
      encode({
        method: StunMethod.send,
        cls: StunClass.indication,
        transactionId,
        attributes: [
          { type: StunAttr.xorPeerAddress, value: encodeXorAddress(peer, transactionId) },
          { type: StunAttr.data, value: data },
        ],
      }),
    );
  }

  channelData(channel: number, data: Buffer): void {
    const header = Buffer.alloc(4);
    header.writeUInt16BE(channel, 0);
    header.writeUInt16BE(data.length, 2);
    this.sendRaw(Buffer.concat([header, data, Buffer.alloc((4 - (data.length % 4)) % 4)]));
  }
}

/** A UDP listener standing in for a peer; closed by `cleanup()`. */
export async function udpPeer(address = '127.0.0.1'): Promise<{
  socket: dgram.Socket;
  address: TransportAddress;
  received: { data: Buffer; from: TransportAddress }[];
  next(): Promise<{ data: Buffer; from: TransportAddress }>;
}> {
  const socket = dgram.createSocket(isIPv6(address) ? 'udp6' : 'udp4');
  defer(() => new Promise<void>((r) => socket.close(() => r())));
  await new Promise<void>((r) => socket.bind(0, address, () => r()));
  const received: { data: Buffer; from: TransportAddress }[] = [];
  const waiters: ((m: { data: Buffer; from: TransportAddress }) => void)[] = [];
  socket.on('message', (data, rinfo) => {
    const m = { data, from: { address: rinfo.address, port: rinfo.port } };
    const w = waiters.shift();
    if (w) w(m);
    else received.push(m);
  });
  return {
    socket,
    address: { address, port: socket.address().port },
    received,
    next: () => {
      const m = received.shift();
      return m ? Promise.resolve(m) : new Promise((r) => waiters.push(r));
    },
  };
}
