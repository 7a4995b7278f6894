/**
 * A Node benchmark peer in its own process (forked by bench/peer.mjs): the built package's
 * `rallypoint/node` joinRoom (dist/peer/node.js) with werift (its default) or @roamhq/wrtc.
 * Usage: node-peer.mjs <werift|wrtc|udp> <signaling ws url> [joinRoom options JSON]
 * ('udp': the plain-UDP baseline below only). Driven over the IPC channel:
 * {id, method, args} -> {id, result} | {id, error}. Exits when the parent goes away.
 */
import { createAgent } from './peer-agent.mjs';

const [runtime, url, extra] = process.argv.slice(2);
const { joinRoom } = await import(new URL('../../dist/peer/node.js', import.meta.url).href);

// argv[4], optional: more joinRoom options as JSON (e.g. {"flow": {...}}).
const options = { url, reconnect: false, ...(extra ? JSON.parse(extra) : {}) };
if (runtime === 'wrtc') {
  // `rtc: wrtc` exactly as documented.
  const { default: wrtc } = await import('@roamhq/wrtc');
  options.rtc = wrtc;
} else if (runtime !== 'werift' && runtime !== 'udp') {
  throw new Error(`unknown runtime ${runtime}`);
}

// CLOCK_MONOTONIC: one clock for every process on the machine, so a receive time in one
// child minus a send time in another is a true one-way time.
const now = () => Number(process.hrtime.bigint()) / 1e6;
const agent = createAgent({ joinRoom, options, now });

/*
 * Baseline without WebRTC: the same 60 Hz state stream and echo over a plain UDP socket on
 * 127.0.0.1 between two of these processes. It shows what the machine itself adds (process
 * wake-ups, scheduling under other jobs' load) to any latency measured here.
 */
const PING = 1;
const PONG = 2;
let udp = null;
let udpSink = null;

async function udpOpen() {
  if (udp) return udp.address().port;
  const { createSocket } = await import('node:dgram');
  udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    const t = now();
    if (msg[0] === PING) {
      msg[0] = PONG;
      msg.writeDoubleBE(t, 16);
      udp.send(msg, rinfo.port, rinfo.address);
    } else if (msg[0] === PONG && udpSink) {
      udpSink(msg.readDoubleBE(8), msg.readDoubleBE(16), t);
    }
  });
  await new Promise((resolve) => udp.bind(0, '127.0.0.1', resolve));
  return udp.address().port;
}

agent.udpOpen = udpOpen;
agent.udpStream = async (port, { hz = 60, size = 200, seconds = 3 } = {}) => {
  await udpOpen();
  const rtt = [];
  const oneWay = [];
  const backWay = [];
  const at = [];
  udpSink = (tSend, tRemote, tBack) => {
    at.push(tSend);
    rtt.push(tBack - tSend);
    oneWay.push(tRemote - tSend);
    backWay.push(tBack - tRemote);
  };
  const period = 1000 / hz;
  const n = Math.round(hz * seconds);
  const t0 = now() + 5;
  let late = 0;
  for (let i = 0; i < n; i++) {
    const wait = t0 + i * period - now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    else if (wait < -period) late++;
    const msg = Buffer.alloc(size);
    msg[0] = PING;
    msg.writeUInt32BE(i, 1);
    msg.writeDoubleBE(now(), 8);
    udp.send(msg, port, '127.0.0.1');
  }
  await new Promise((r) => setTimeout(r, 300));
  udpSink = null;
  return { sent: n, pongs: rtt.length, late, at, rtt, oneWay, backWay };
};

process.on('message', async ({ id, method, args }) => {
  try {
    const result = await agent[method](...(args ?? []));
    process.send({ id, result });
  } catch (err) {
    process.send({ id, error: err?.stack ?? String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true, pid: process.pid });
