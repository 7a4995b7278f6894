/**
 * A TURN load process (forked by bench/turn.mjs). It opens allocations on a TURN server
 * (one UDP socket each, connected to the server), points each at a UDP echo peer, and sends
 * datagrams that the peer echoes back through the relay; the send time travels in the
 * payload, so the round trip is timed on this process's clock.
 *
 * IPC (parent -> worker):
 *   { cmd: 'setup', server: {address, port}, peer: {address, port}, creds: [{username, password}], method }
 *        method 'channel': ChannelBind + ChannelData (what WebRTC stacks use)
 *        method 'send':    CreatePermission + Send indications (Data indications back)
 *   { cmd: 'start', mode: 'window', window }   each allocation keeps `window` datagrams in flight
 *   { cmd: 'start', mode: 'paced', rate }      this worker offers `rate` datagrams/s in total
 *   { cmd: 'slice' }   -> { type: 'slice', received, sent, lost, ms, cpuUs, hist }  (since the last slice)
 *   { cmd: 'stop' }    -> { type: 'stopped' }
 * worker -> parent: { type: 'ready' | 'setup' | 'slice' | 'stopped' } | { type: 'fatal', error }
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { decodeXorAddress, encode, encodeXorAddress, longTermKey, readHeader, StunAttr, StunClass, StunMethod, scanAttributes } from '../../dist/turn/codec.js';

/** A server answer read with the server's own bounded codec (readHeader, scanAttributes). */
function decode(buf) {
  const header = readHeader(buf);
  const scan = header && scanAttributes(buf, 64);
  if (!scan || typeof scan === 'string') throw new Error('not a well-formed STUN message');
  const attributes = scan.attributes.map((a) => ({ type: a.type, value: buf.subarray(a.offset, a.offset + a.length) }));
  return { method: header.method, cls: header.cls, transactionId: buf.subarray(8, 20), attributes };
}

function getAttr(msg, type) {
  return msg.attributes.find((a) => a.type === type)?.value;
}

import { newHist, record, toSparse } from './hist.mjs';

if (!process.send) {
  console.error('turn-load must be forked with an IPC channel');
  process.exit(2);
}
process.on('disconnect', () => process.exit(0));
process.on('uncaughtException', (err) => {
  process.send?.({ type: 'fatal', error: String(err?.stack ?? err) });
  process.exit(1);
});

export const PAYLOAD = 200; // bytes of application data per datagram (a multiple of 4: no ChannelData padding)
const CHANNEL = 0x4000;
const LOSS_MS = 1000; // a datagram not back after this is counted lost and its window slot resent
const now = () => performance.now();

let allocs = [];
let method = 'channel';
let mode = 'idle';
let window = 1;
let pacedTimer;
let lossTimer;
let seq = 1;
// counters since the last slice
let received = 0;
let sent = 0;
let lost = 0;
let hist = newHist();
let sliceAt = now();
let cpuAt = process.cpuUsage();

function errorCode(msg) {
  const v = getAttr(msg, StunAttr.errorCode);
  return v ? (v[2] & 7) * 100 + v[3] : undefined;
}

/** One allocation: its socket, credentials, and (window mode) the seq outstanding per slot. */
class Alloc {
  constructor(socket, username, password) {
    this.socket = socket;
    this.username = username;
    this.password = password;
    this.pending = new Map();
    this.slotSeq = [];
    this.slotAt = [];
    this.peer = undefined;
    this.peerAttr = undefined; // XOR-PEER-ADDRESS for Send indications, encoded once
  }

  transact(m, attrs) {
    const transactionId = randomBytes(12);
    const auth = this.nonce
      ? [
          { type: StunAttr.username, value: Buffer.from(this.username) },
          { type: StunAttr.realm, value: Buffer.from(this.realm) },
          { type: StunAttr.nonce, value: Buffer.from(this.nonce) },
        ]
      : [];
    const buf = encode({ method: m, cls: StunClass.request, transactionId, attributes: [...attrs(transactionId), ...auth] }, { key: this.key });
    return new Promise((resolve, reject) => {
      const key = transactionId.toString('hex');
      let tries = 0;
      const send = () => {
        if (tries++ === 7) {
          this.pending.delete(key);
          return reject(new Error(`TURN request 0x${m.toString(16)}: no answer`));
        }
        this.socket.send(buf);
        timer = setTimeout(send, 250 * tries);
      };
      let timer;
      this.pending.set(key, (msg) => {
        clearTimeout(timer);
        this.pending.delete(key);
        resolve(msg);
      });
      send();
    });
  }

  async request(m, attrs) {
    let msg = await this.transact(m, attrs);
    const code = errorCode(msg);
    if (code === 401 || code === 438) {
      this.realm = getAttr(msg, StunAttr.realm).toString();
      this.nonce = getAttr(msg, StunAttr.nonce).toString();
      this.key = longTermKey(this.username, this.realm, this.password);
      msg = await this.transact(m, attrs);
    }
    if (msg.cls !== StunClass.success) throw new Error(`TURN request 0x${m.toString(16)} failed: ${errorCode(msg)}`);
    return msg;
  }
}

function onPacket(a, buf) {
  let off;
  if ((buf[0] & 0xc0) === 0x40) {
    off = 4; // ChannelData
  } else {
    // STUN: a Data indication (method 0x007, class indication = type 0x0017) or a response.
    if (buf.readUInt16BE(0) !== 0x0017) {
      let msg;
      try {
        msg = decode(buf);
      } catch {
        return;
      }
      a.pending.get(msg.transactionId.toString('hex'))?.(msg);
      return;
    }
    const end = 20 + buf.readUInt16BE(2);
    for (let p = 20; p + 4 <= end; ) {
      const t = buf.readUInt16BE(p);
      const len = buf.readUInt16BE(p + 2);
      if (t === StunAttr.data) {
        off = p + 4;
        break;
      }
      p += 4 + len + ((4 - (len % 4)) % 4);
    }
    if (off === undefined) return;
  }
  const slot = buf.readUInt16BE(off);
  const s = buf.readUInt32BE(off + 4);
  const at = buf.readDoubleBE(off + 8);
  if (slot !== 0xffff) {
    if (a.slotSeq[slot] !== s) return; // a late datagram already counted lost
    a.slotSeq[slot] = 0;
  }
  received++;
  record(hist, now() - at);
  if (mode === 'window' && slot !== 0xffff) sendOne(a, slot);
}

function sendOne(a, slot) {
  const s = seq++;
  const t = now();
  let buf;
  let off;
  if (method === 'channel') {
    buf = Buffer.allocUnsafe(4 + PAYLOAD);
    buf.writeUInt16BE(CHANNEL, 0);
    buf.writeUInt16BE(PAYLOAD, 2);
    off = 4;
  } else {
    // Send indication: header, XOR-PEER-ADDRESS, DATA. The transaction id is not checked by
    // servers for indications; a fixed random one keeps the client cheap.
    const pa = a.peerAttr;
    buf = Buffer.allocUnsafe(20 + pa.length + 4 + PAYLOAD);
    pa.header.copy(buf, 0);
    pa.body.copy(buf, 20);
    off = 20 + pa.body.length + 4;
    buf.writeUInt16BE(StunAttr.data, off - 4);
    buf.writeUInt16BE(PAYLOAD, off - 2);
  }
  buf.fill(0, off, off + PAYLOAD);
  buf.writeUInt16BE(slot, off);
  buf.writeUInt32BE(s, off + 4);
  buf.writeDoubleBE(t, off + 8);
  if (slot !== 0xffff) {
    a.slotSeq[slot] = s;
    a.slotAt[slot] = t;
  }
  sent++;
  a.socket.send(buf);
}

async function setup({ server, peer, creds, method: m }) {
  method = m;
  allocs = await Promise.all(
    creds.map(async ({ username, password }) => {
      const socket = dgram.createSocket('udp4');
      await new Promise((r) => socket.bind(0, '127.0.0.1', r));
      await new Promise((r, j) => socket.connect(server.port, server.address, (err) => (err ? j(err) : r())));
      const a = new Alloc(socket, username, password);
      socket.on('message', (buf) => onPacket(a, buf));
      socket.on('error', () => {});
      const alloc = await a.request(StunMethod.allocate, () => [{ type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) }]);
      a.relayed = decodeXorAddress(getAttr(alloc, StunAttr.xorRelayedAddress), alloc.transactionId);
      if (m === 'channel') {
        await a.request(StunMethod.channelBind, (tid) => [
          { type: StunAttr.channelNumber, value: Buffer.from([CHANNEL >> 8, CHANNEL & 0xff, 0, 0]) },
          { type: StunAttr.xorPeerAddress, value: encodeXorAddress(peer, tid) },
        ]);
      } else {
        await a.request(StunMethod.createPermission, (tid) => [{ type: StunAttr.xorPeerAddress, value: encodeXorAddress(peer, tid) }]);
        const tid = randomBytes(12);
        const full = encode({
          method: StunMethod.send,
          cls: StunClass.indication,
          transactionId: tid,
          attributes: [
            { type: StunAttr.xorPeerAddress, value: encodeXorAddress(peer, tid) },
            { type: StunAttr.data, value: Buffer.alloc(PAYLOAD) },
          ],
        });
        const body = full.subarray(20, full.length - 4 - PAYLOAD);
        a.peerAttr = { header: full.subarray(0, 20), body, length: body.length };
      }
      return a;
    }),
  );
  return { relayed: allocs.map((a) => a.relayed) };
}

function start(msg) {
  stop();
  mode = msg.mode;
  if (mode === 'window') {
    window = msg.window;
    for (const a of allocs) for (let slot = 0; slot < window; slot++) sendOne(a, slot);
    lossTimer = setInterval(() => {
      const t = now();
      for (const a of allocs) {
        for (let slot = 0; slot < window; slot++) {
          if (a.slotSeq[slot] && t - a.slotAt[slot] > LOSS_MS) {
            lost++;
            sendOne(a, slot);
          }
        }
      }
    }, 100);
  } else {
    // Paced: `rate` datagrams/s from this worker in total, round robin over its allocations,
    // sent on a 1 ms timer (a late timer sends what is due at once).
    const began = now();
    let due = 0;
    let next = 0;
    pacedTimer = setInterval(() => {
      const target = Math.floor(((now() - began) * msg.rate) / 1000);
      for (; due < target; due++) sendOne(allocs[next++ % allocs.length], 0xffff);
    }, 1);
  }
}

function stop() {
  mode = 'idle';
  clearInterval(pacedTimer);
  clearInterval(lossTimer);
  for (const a of allocs) a.slotSeq.fill(0);
}

function slice() {
  const t = now();
  const cpu = process.cpuUsage(cpuAt);
  const out = { type: 'slice', received, sent, lost, ms: t - sliceAt, cpuUs: cpu.user + cpu.system, hist: toSparse(hist) };
  received = sent = lost = 0;
  hist = newHist();
  sliceAt = t;
  cpuAt = process.cpuUsage();
  return out;
}

process.on('message', (msg) => {
  if (msg.cmd === 'setup') {
    setup(msg).then(
      (r) => process.send({ type: 'setup', ...r }),
      (err) => process.send({ type: 'fatal', error: String(err?.stack ?? err) }),
    );
  } else if (msg.cmd === 'start') {
    slice();
    start(msg);
  } else if (msg.cmd === 'slice') {
    process.send(slice());
  } else if (msg.cmd === 'stop') {
    stop();
    process.send({ type: 'stopped' });
  } else if (msg.cmd === 'exit') {
    for (const a of allocs) a.socket.close();
    process.exit(0);
  }
});
process.send({ type: 'ready' });
