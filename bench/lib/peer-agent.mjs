/**
 * One benchmark peer, driven by bench/peer.mjs. The same code runs in a Node child process
 * (bench/lib/node-peer.mjs, `rallypoint/node`'s joinRoom with werift or @roamhq/wrtc) and in
 * a Chromium page (bench/lib/page.html, the browser bundle dist/web/rallypoint.min.js), so
 * every pair is measured by identical logic. Plain ESM, no Node or DOM imports.
 *
 * Wire format, binary messages (first byte = kind):
 *   unreliable  PING [1][seq u32 @1][tSend f64 @8] ... (padded to the state size)
 *               PONG  same bytes, kind 2, with the echoing side's receive time f64 @16
 *   reliable    BULK [3][seq u32 @1] ... (padded to the bulk size)
 *   reliable    the text "connected": sent by each side on 'peer-connected'
 */
const PING = 1;
const PONG = 2;
const BULK = 3;
const NOTICE = 'connected';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @param {{ joinRoom: Function, options: object, now: () => number }} deps
 *   joinRoom: the library's; options: merged into every joinRoom call (url, rtc, ...);
 *   now: milliseconds on this side's clock (a clock shared by all Node children: CLOCK_MONOTONIC).
 */
export function createAgent({ joinRoom, options, now }) {
  let room = null;
  let errors = [];
  /** peer id -> time of our 'peer-connected' / of their "connected" notice */
  let connectedAt = new Map();
  let noticeAt = new Map();
  let changed = () => {};
  const pings = { received: 0 };
  let pongSink = null;
  let bulk = null;

  function resetBulk() {
    bulk = { count: 0, bytes: 0, firstAt: NaN, firstBytes: 0, lastAt: NaN, nextSeq: 0, orderErrors: 0, sizeErrors: 0, size: 0 };
  }
  resetBulk();

  function onMessage({ peer, channel, data }) {
    const t = now();
    if (typeof data === 'string') {
      if (channel === 'reliable' && data === NOTICE) {
        noticeAt.set(peer.id, t);
        changed();
      }
      return;
    }
    const bytes = data;
    const kind = bytes[0];
    if (channel === 'unreliable') {
      if (kind === PING) {
        pings.received++;
        const echo = new Uint8Array(bytes);
        echo[0] = PONG;
        new DataView(echo.buffer).setFloat64(16, t);
        peer.send('unreliable', echo).catch(() => {});
      } else if (kind === PONG && pongSink) {
        const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        pongSink(dv.getUint32(1), dv.getFloat64(8), dv.getFloat64(16), t);
      }
    } else if (channel === 'reliable' && kind === BULK) {
      const seq = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
      if (seq !== bulk.nextSeq) bulk.orderErrors++;
      bulk.nextSeq = seq + 1;
      if (bulk.size && bytes.byteLength !== bulk.size) bulk.sizeErrors++;
      if (bulk.count === 0) {
        bulk.firstAt = t;
        bulk.firstBytes = bytes.byteLength;
      }
      bulk.count++;
      bulk.bytes += bytes.byteLength;
      bulk.lastAt = t;
    }
  }

  function waitFor(cond, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        changed = () => {};
        reject(new Error(`timeout after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      changed = () => {
        if (!cond()) return;
        clearTimeout(timer);
        changed = () => {};
        resolve();
      };
      changed();
    });
  }

  async function join(roomName) {
    if (room) throw new Error('already in a room');
    connectedAt = new Map();
    noticeAt = new Map();
    errors = [];
    const r = await joinRoom({ ...options, room: roomName });
    room = r;
    r.on('peer-connected', (peer) => {
      connectedAt.set(peer.id, now());
      peer.send('reliable', NOTICE).catch((e) => errors.push(`notice: ${e.message}`));
      changed();
    });
    r.on('message', onMessage);
    r.on('error', (e) => errors.push(`${e.code ?? ''}: ${e.message}`));
    return r.id;
  }

  const bothUp = (id) => connectedAt.has(id) && noticeAt.has(id);
  const onlyPeer = () => (room && room.peers.size === 1 ? [...room.peers.keys()][0] : undefined);

  function peerOf(id) {
    const p = room?.peers.get(id);
    if (!p) throw new Error(`no peer ${id}`);
    return p;
  }

  return {
    join,

    /**
     * Joins a room that holds one peer already and resolves once both sides' channels are
     * open, all on this side's clock: our own 'peer-connected', and the other side's
     * "connected" notice (sent on its 'peer-connected'; it arrives one one-way trip later,
     * so `totalMs` is an upper bound by well under a millisecond on loopback).
     */
    async joinTimed(roomName, timeoutMs = 15_000) {
      const t0 = now();
      const id = await join(roomName);
      const tJoined = now();
      await waitFor(
        () => {
          const p = onlyPeer();
          return p !== undefined && bothUp(p);
        },
        timeoutMs,
        'both sides connected',
      );
      const p = onlyPeer();
      const self = connectedAt.get(p) - t0;
      const other = noticeAt.get(p) - t0;
      return { id, peer: p, totalMs: Math.max(self, other), selfMs: self, noticeMs: other, signalingMs: tJoined - t0 };
    },

    /** Resolves when `id` is connected from our side and its notice arrived. */
    async waitConnected(id, timeoutMs = 15_000) {
      await waitFor(() => bothUp(id), timeoutMs, `peer ${id} connected`);
    },

    async leave() {
      const r = room;
      room = null;
      changed = () => {};
      if (r) await r.leave();
      return errors;
    },

    errors: () => errors,

    /**
     * Game-state stream: `hz` messages/s of `size` bytes on `unreliable` for `seconds`; the
     * other side echoes each one. Returns per-message samples (ms): round trip on our clock,
     * and the echoing side's receive time minus our send time (a one-way time when both
     * clocks are the same clock).
     */
    async stateStream(id, { hz = 60, size = 200, seconds = 3 } = {}) {
      const peer = peerOf(id);
      const pingsBefore = pings.received;
      const rtt = [];
      const oneWay = [];
      const backWay = [];
      const at = [];
      let pongs = 0;
      let late = 0;
      pongSink = (_seq, tSend, tRemote, tBack) => {
        pongs++;
        at.push(tSend);
        rtt.push(tBack - tSend);
        oneWay.push(tRemote - tSend);
        backWay.push(tBack - tRemote);
      };
      const period = 1000 / hz;
      const n = Math.round(hz * seconds);
      const t0 = now() + 5;
      let sent = 0;
      for (let i = 0; i < n; i++) {
        const due = t0 + i * period;
        const wait = due - now();
        if (wait > 0) await sleep(wait);
        else if (wait < -period) late++;
        const msg = new Uint8Array(size);
        const dv = new DataView(msg.buffer);
        msg[0] = PING;
        dv.setUint32(1, i);
        dv.setFloat64(8, now());
        await peer.send('unreliable', msg);
        sent++;
      }
      await sleep(300); // stragglers
      pongSink = null;
      return { sent, pongs, late, at, rtt, oneWay, backWay, pingsEchoedHere: pings.received - pingsBefore };
    },

    /** This side's clock (to relate a page's clock to the others'). */
    clock: () => now(),

    /** How many PINGs this side echoed (the other side's stream). */
    pingCount: () => pings.received,

    /** Receiver side of a bulk transfer: starts counting afresh. */
    bulkReset(size = 0) {
      resetBulk();
      bulk.size = size;
    },

    bulkStats: () => ({ ...bulk }),

    /**
     * Sends `size`-byte messages on `reliable` for `seconds`, awaiting every send() (the
     * library's backpressure: a send waits while the channel is above its high watermark).
     */
    async bulkSend(id, { size = 16 * 1024, seconds = 3, stallMs = 10_000 } = {}) {
      const peer = peerOf(id);
      const t0 = now();
      const end = t0 + seconds * 1000;
      let seq = 0;
      let bytes = 0;
      // A send that has not resolved after stallMs ends the transfer (reported as stalled).
      let progressAt = t0;
      let stalled = false;
      let onStall;
      const stall = new Promise((resolve) => (onStall = resolve));
      const watch = setInterval(() => {
        if (now() - progressAt > stallMs) onStall('stalled');
      }, 250);
      try {
        while (now() < end) {
          const msg = new Uint8Array(size);
          msg[0] = BULK;
          new DataView(msg.buffer).setUint32(1, seq);
          if ((await Promise.race([peer.send('reliable', msg), stall])) === 'stalled') {
            stalled = true;
            break;
          }
          seq++;
          bytes += size;
          progressAt = now();
        }
      } finally {
        clearInterval(watch);
      }
      return { count: seq, bytes, ms: now() - t0, stalled, stalledAfterMs: stalled ? progressAt - t0 : null };
    },

    /** Resolves once `count` bulk messages arrived here (or the timeout passed). */
    async bulkWait(count, timeoutMs) {
      const until = now() + timeoutMs;
      while (bulk.count < count && now() < until) await sleep(20);
      return { ...bulk };
    },

    async stats(id) {
      const s = await peerOf(id).stats();
      return { rttMs: s.rttMs ?? null, path: s.path, messagesDropped: s.messagesDropped, local: s.selectedPair?.local ?? null, remote: s.selectedPair?.remote ?? null };
    },
  };
}
