/**
 * A load-generating process (forked by bench/signaling.mjs). Sender and receiver of
 * each pair live here, so the send timestamp inside the signal data and the receive time
 * come from the same clock.
 *
 * IPC (parent -> worker):
 *   { cmd: 'pairs', kind, port, pairs, tag, frames }  open and join `pairs` sender/receiver pairs;
 *                                               frames 'relay': they send `relay` frames, not signals
 *   { cmd: 'idle', kind, port, count, tag }     open and join `count` sockets (rooms of 2), then hold them
 *   { cmd: 'start', mode: 'window', window }    each sender keeps `window` messages in flight
 *   { cmd: 'start', mode: 'paced', rate }       this worker offers `rate` messages/s in total
 *   { cmd: 'slice' }                            report counters since the last slice, start a new one
 *   { cmd: 'stop' }                             stop sending
 *   { cmd: 'exit' }
 * worker -> parent: { type: 'connected' | 'slice' | 'stopped', ... } | { type: 'fatal', error }
 */
import WebSocket from 'ws';
import { newHist, record, toSparse } from './hist.mjs';

if (!process.send) {
  console.error('load-worker must be forked with an IPC channel');
  process.exit(2);
}
process.on('disconnect', () => process.exit(0));
process.on('uncaughtException', (err) => {
  process.send?.({ type: 'fatal', error: String(err?.stack ?? err) });
  process.exit(1);
});

/** A realistic trickle-ICE candidate, ~200 bytes on the wire with its envelope. */
const CANDIDATE =
  '"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.5 rport 46154 generation 0 ufrag sTjA network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"sTjA"';

const CLIENT_OPTIONS = {
  perMessageDeflate: false,
  // Keep the load generator cheap so it is less of a limit: a zero mask lets ws skip the
  // masking pass (the server still unmasks as usual) and text is not UTF-8 re-validated.
  skipUTF8Validation: true,
  generateMask: (mask) => mask.fill(0),
  handshakeTimeout: 20_000,
};

/** A relay frame's payload: 150 bytes, base64 as the peer library sends bytes. */
const RELAY_DATA = Buffer.alloc(150, 7).toString('base64');
/** A relay frame has no field for a float timestamp: microseconds mod 2^32 go in `ack`. */
const stampUs = () => Math.floor(performance.now() * 1000) % 2 ** 32;

/** Per-server-kind wire details: URL, handshake, how a signal is framed. */
function adapter(kind, port, frames) {
  if (kind === 'peerjs') {
    return {
      url: (id) => `ws://127.0.0.1:${port}/peerjs?key=peerjs&id=${id}&token=t${id}`,
      protocols: undefined,
      // Resolves with the peer's id once the server accepted it.
      handshake: (ws, id) =>
        new Promise((resolve, reject) => {
          ws.once('message', (data) => {
            const msg = JSON.parse(data.toString());
            if (msg.type === 'OPEN') resolve(id);
            else reject(new Error(`peerjs refused ${id}: ${data}`));
          });
        }),
      prefix: (to) => `{"type":"CANDIDATE","dst":${JSON.stringify(to)},"payload":{${CANDIDATE},"seq":`,
      signalStart: '{"type":"CANDIDATE","src":',
      fromField: 'src',
      dataField: 'payload',
    };
  }
  // ours and bare speak rallypoint.v1
  return {
    url: () => `ws://127.0.0.1:${port}/ws`,
    protocols: ['rallypoint.v1'],
    handshake: (ws, _id, room) =>
      new Promise((resolve, reject) => {
        const onMessage = (data) => {
          const msg = JSON.parse(data.toString());
          if (msg.type === 'welcome') {
            ws.off('message', onMessage);
            resolve(msg.id);
          } else if (msg.type === 'error') {
            ws.off('message', onMessage);
            reject(new Error(`join refused: ${data}`));
          }
        };
        ws.on('message', onMessage);
        ws.send(JSON.stringify({ type: 'join', room }));
      }),
    ...(frames === 'relay'
      ? {
          prefix: (to) => `{"type":"relay","to":${JSON.stringify(to)},"channel":"bench","data":"${RELAY_DATA}","b64":true,"seq":`,
          signalStart: '{"type":"relay","from":',
          relay: true,
        }
      : {
          prefix: (to) => `{"type":"signal","to":${JSON.stringify(to)},"data":{${CANDIDATE},"seq":`,
          signalStart: '{"type":"signal","from":',
          relay: false,
        }),
    fromField: 'from',
    dataField: 'data',
  };
}

function open(ad, id, room) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(ad.url(id), ad.protocols, CLIENT_OPTIONS);
    ws.once('error', reject);
    ws.once('open', () => {
      ad.handshake(ws, id, room).then((serverId) => {
        ws.off('error', reject);
        ws.on('error', () => {});
        resolve({ ws, id: serverId });
      }, reject);
    });
  });
}

/** Runs `fn(i)` for i in [0, n) with at most `limit` running at once. */
async function pool(n, limit, fn) {
  let next = 0;
  const results = new Array(n);
  const runners = Array.from({ length: Math.min(limit, n) }, async () => {
    while (next < n) {
      const i = next++;
      results[i] = await fn(i);
    }
  });
  await Promise.all(runners);
  return results;
}

// ---- relay load -------------------------------------------------------------------------

const state = {
  pairs: [],
  mode: 'idle', // 'window' | 'paced' | 'idle'
  window: 0,
  hist: newHist(),
  received: 0,
  errors: 0,
  seqErrors: 0,
  unexpected: [],
  measureStart: 0,
  measureCpu: null,
  sent: 0,
  skipped: 0,
  pacer: null,
};

function resetStats() {
  state.hist = newHist();
  state.received = 0;
  state.errors = 0;
  state.seqErrors = 0;
  state.sent = 0;
  state.skipped = 0;
  state.measureStart = performance.now();
  state.measureCpu = process.cpuUsage();
}

/**
 * Frames a sender writes in one tick (a receiver often gets several signals in one read,
 * and each frees a window slot) go out in one write: the socket is corked on the first
 * and uncorked on the next tick. This keeps the load generator cheap per message; the
 * servers see the same pattern (several frames per TCP read) whichever they are.
 */
function sendOne(pair) {
  if (!pair.corked) {
    pair.corked = true;
    pair.socket.cork();
    process.nextTick(uncork, pair);
  }
  pair.ws.send(pair.relay ? `${pair.prefix}${pair.nextSeq++},"ack":${stampUs()}}` : `${pair.prefix}${pair.nextSeq++},"t":${performance.now()}}}`);
  state.sent++;
}

function uncork(pair) {
  pair.corked = false;
  pair.socket.uncork();
}

function onSignal(pair, data) {
  const text = data.toString('latin1');
  if (!text.startsWith(pair.expectStart)) {
    // peer-joined and the like are expected during setup; an error frame is not.
    if (text.includes('"error"') || text.includes('"ERROR"')) {
      state.errors++;
      if (state.unexpected.length < 5) state.unexpected.push(text.slice(0, 300));
    }
    return;
  }
  const now = performance.now();
  const s = text.lastIndexOf('"seq":');
  const c = text.indexOf(',', s);
  const seq = Number(text.slice(s + 6, c));
  // Signals end `,"t":<ms>}}`; relay frames `,"ack":<µs mod 2^32>}`.
  const latency = pair.relay ? ((stampUs() - Number(text.slice(c + 7, text.length - 1)) + 2 ** 32) % 2 ** 32) / 1000 : now - Number(text.slice(c + 5, text.length - 2));
  if (seq !== pair.expectSeq) {
    state.seqErrors++;
    if (state.unexpected.length < 5) state.unexpected.push(`seq ${seq}, expected ${pair.expectSeq}`);
  }
  pair.expectSeq = seq + 1;
  // Every 256th frame is fully parsed and checked (sender stamp, payload intact).
  if ((seq & 255) === 0) {
    const msg = JSON.parse(text);
    const body = msg[pair.dataField];
    const intact = pair.relay ? msg.seq === seq && body === RELAY_DATA && msg.b64 === true : body?.seq === seq && body?.sdpMid === '0' && typeof body?.candidate === 'string';
    if (msg[pair.fromField] !== pair.fromId || !intact) {
      state.errors++;
      if (state.unexpected.length < 5) state.unexpected.push(`bad frame: ${text.slice(0, 300)}`);
    }
  }
  state.received++;
  record(state.hist, latency);
  pair.inflight--;
  if (state.mode === 'window' && pair.inflight < state.window) {
    pair.inflight++;
    sendOne(pair);
  }
}

async function connectPairs({ kind, port, pairs, tag, frames }) {
  const ad = adapter(kind, port, frames);
  const made = await pool(pairs, 32, async (i) => {
    const room = `${tag}-${i}`;
    const sender = await open(ad, `${tag}-${i}-s`, room);
    const receiver = await open(ad, `${tag}-${i}-r`, room);
    const pair = {
      ws: sender.ws,
      // ws keeps its net.Socket in _socket; corking it is how frames of one tick are batched.
      socket: sender.ws._socket,
      corked: false,
      receiverWs: receiver.ws,
      fromId: sender.id,
      prefix: ad.prefix(receiver.id),
      expectStart: ad.signalStart,
      relay: ad.relay === true,
      fromField: ad.fromField,
      dataField: ad.dataField,
      nextSeq: 0,
      expectSeq: 0,
      inflight: 0,
    };
    receiver.ws.on('message', (data) => onSignal(pair, data));
    sender.ws.on('message', (data) => {
      const text = data.toString();
      if (text.includes('"error"') || text.includes('"ERROR"')) {
        state.errors++;
        if (state.unexpected.length < 5) state.unexpected.push(text.slice(0, 300));
      }
    });
    return pair;
  });
  state.pairs = made;
  const sample = ad.relay ? `${made[0].prefix}123456,"ack":1234567890}` : `${made[0].prefix}123456,"t":12345.678901}}`;
  process.send({ type: 'connected', sockets: made.length * 2, frameBytes: Buffer.byteLength(sample) });
}

function start({ mode, window, rate }) {
  resetStats();
  state.mode = mode;
  if (mode === 'window') {
    state.window = window;
    for (const pair of state.pairs) {
      while (pair.inflight < window) {
        pair.inflight++;
        sendOne(pair);
      }
    }
  } else if (mode === 'paced') {
    // Offered load at a fixed rate, spread over the pairs, checked every millisecond.
    const begin = performance.now();
    let due = 0;
    let rr = 0;
    const tick = () => {
      if (state.mode !== 'paced') return;
      const target = Math.floor(((performance.now() - begin) / 1000) * rate);
      while (due < target) {
        const pair = state.pairs[rr++ % state.pairs.length];
        due++;
        if (pair.inflight >= 64) {
          state.skipped++; // the server is not keeping up: do not queue without bound
          continue;
        }
        pair.inflight++;
        sendOne(pair);
      }
      state.pacer = setTimeout(tick, 1);
    };
    tick();
  }
}

/** Stats since the previous slice (or since start), then a fresh slice begins. */
function slice() {
  const now = performance.now();
  const cpu = process.cpuUsage(state.measureCpu);
  const sparse = toSparse(state.hist);
  const report = {
    type: 'slice',
    received: state.received,
    sent: state.sent,
    skipped: state.skipped,
    ms: now - state.measureStart,
    cpuUs: cpu.user + cpu.system,
    hist: sparse,
    errors: state.errors,
    seqErrors: state.seqErrors,
    unexpected: state.unexpected.splice(0),
  };
  resetStats();
  return report;
}

function stop() {
  state.mode = 'idle';
  if (state.pacer) clearTimeout(state.pacer);
  process.send({ type: 'stopped' });
}

// ---- idle connections -------------------------------------------------------------------

const idle = [];

async function connectIdle({ kind, port, count, tag }) {
  const ad = adapter(kind, port);
  const started = performance.now();
  await pool(count, 64, async (i) => {
    const c = await open(ad, `${tag}-${i}`, `${tag}-${i >> 1}`);
    idle.push(c.ws);
  });
  process.send({ type: 'connected', sockets: idle.length, ms: performance.now() - started });
}

process.on('message', (m) => {
  const fail = (err) => {
    process.send({ type: 'fatal', error: String(err?.stack ?? err) });
    process.exit(1);
  };
  switch (m?.cmd) {
    case 'pairs':
      connectPairs(m).catch(fail);
      break;
    case 'idle':
      connectIdle(m).catch(fail);
      break;
    case 'start':
      start(m);
      break;
    case 'slice':
      process.send(slice());
      break;
    case 'stop':
      stop();
      break;
    case 'exit':
      process.exit(0);
  }
});
process.send({ type: 'ready' });
