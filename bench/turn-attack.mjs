#!/usr/bin/env node
/**
 * /healthz latency under a TURN datagram attack: signaling and the embedded TURN server in one
 * process (bench/lib/turn-attack-child.mjs, wired as the CLI does), probed over HTTP every
 * 20 ms while 64 KB STUN datagrams built to be expensive arrive at a steady rate and in
 * bursts. Run side by side for one or more builds (A/B of two checkouts). Not a test: it
 * measures into test-artifacts/bench/turn-attack.json (or --json FILE) and prints the table
 * rendered from it (bench/report/turn-attack.mjs: p50/p99/max of /healthz in ms).
 *
 *   npm run bench:turn-attack                                   # this build
 *   node bench/turn-attack.mjs --builds /tmp/rp-main/dist,dist  # before vs after
 *   options: --seconds 5 --rate 10 --burst 20 --burst-every-ms 1000 --attacks none,fingerprint,unknown,integrity
 *
 * Attacks (one 64 KB datagram each, from 4 source addresses 127.0.0.20-23):
 *   fingerprint: a Binding header and ~8,100 FINGERPRINT attributes;
 *   unknown:     a Binding header and 16,000 unknown comprehension-optional attributes;
 *   integrity:   an Allocate naming a valid user, then MESSAGE-INTEGRITY ~2,700 times.
 */
import dgram from 'node:dgram';
import { request } from 'node:http';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, list } from './lib/args.mjs';
import { forkChild } from './lib/children.mjs';
import { saveResults } from './lib/results.mjs';
import { quantileFloor as q } from './lib/stats.mjs';
import * as report from './report/turn-attack.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const CHILD = join(here, 'lib', 'turn-attack-child.mjs');
const SECRET = `bench-attack-${Math.random().toString(36).slice(2)}-secret`;

const args = benchArgs({
  builds: { type: 'string', default: 'dist' },
  seconds: { type: 'string', default: '5' },
  rate: { type: 'string', default: '10' },
  burst: { type: 'string', default: '20' },
  'burst-every-ms': { type: 'string', default: '1000' },
  attacks: { type: 'string', default: 'none,fingerprint,unknown,integrity' },
});
const builds = list(args.builds).map((b) => (isAbsolute(b) ? b : join(root, b)));
const attacks = list(args.attacks);
const seconds = Number(args.seconds);
const rate = Number(args.rate);
const burst = Number(args.burst);
const burstEveryMs = Number(args['burst-every-ms']);

const MAGIC = 0x2112a442;
const MAX_DATAGRAM = 65_507;
function header(type, length) {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(type, 0);
  h.writeUInt16BE(length, 2);
  h.writeUInt32BE(MAGIC, 4);
  h.fill(7, 8);
  return h;
}
function attr(type, value) {
  const b = Buffer.alloc(4 + value.length + ((4 - (value.length % 4)) % 4));
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(value.length, 2);
  value.copy(b, 4);
  return b;
}
const DATAGRAMS = {
  fingerprint() {
    const n = Math.floor((MAX_DATAGRAM - 20) / 8);
    const body = Buffer.concat(Array.from({ length: n }, () => attr(0x8028, Buffer.alloc(4))));
    return Buffer.concat([header(0x0001, body.length), body]);
  },
  unknown() {
    const body = Buffer.concat(Array.from({ length: 16_000 }, () => attr(0x8fff, Buffer.alloc(0))));
    return Buffer.concat([header(0x0001, body.length), body]);
  },
  integrity(username) {
    const head = Buffer.concat([attr(0x0019, Buffer.from([17, 0, 0, 0])), attr(0x0006, Buffer.from(username)), attr(0x0014, Buffer.from('rallypoint')), attr(0x0015, Buffer.alloc(58, 'a'))]);
    const n = Math.floor((MAX_DATAGRAM - 20 - head.length) / 24);
    const body = Buffer.concat([head, ...Array.from({ length: n }, () => attr(0x0008, Buffer.alloc(20)))]);
    return Buffer.concat([header(0x0003, body.length), body]);
  },
};

function get(url) {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });
}

async function run(build, attack) {
  const child = forkChild(CHILD, [SECRET], { env: { ...process.env, RALLYPOINT_DIST: build } });
  try {
    const ready = await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    const sockets = await Promise.all(
      [20, 21, 22, 23].map(
        (i) =>
          new Promise((resolve) => {
            const s = dgram.createSocket('udp4');
            s.bind(0, `127.0.0.${i}`, () => resolve(s));
          }),
      ),
    );
    const datagram = attack === 'none' ? undefined : DATAGRAMS[attack](ready.username);
    let sent = 0;
    const send = () => {
      if (!datagram) return;
      sockets[sent % sockets.length].send(datagram, ready.turnPort, '127.0.0.1');
      sent++;
    };
    const pace = setInterval(send, 1000 / rate);
    const bursts = setInterval(() => {
      for (let i = 0; i < burst; i++) send();
    }, burstEveryMs);
    const latencies = [];
    const end = performance.now() + seconds * 1000;
    // The attack stops on time even if a probe is stuck behind a frozen event loop.
    const stop = setTimeout(() => {
      clearInterval(pace);
      clearInterval(bursts);
    }, seconds * 1000);
    while (performance.now() < end) {
      const t0 = performance.now();
      await get(ready.healthz);
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 20));
    }
    clearTimeout(stop);
    clearInterval(pace);
    clearInterval(bursts);
    for (const s of sockets) s.close();
    latencies.sort((a, b) => a - b);
    return { n: latencies.length, p50: q(latencies, 0.5), p99: q(latencies, 0.99), max: latencies.at(-1), sent };
  } finally {
    child.kill('SIGKILL');
  }
}

const rows = [];
for (const attack of attacks) {
  for (const build of builds) {
    const r = await run(build, attack);
    rows.push({ attack, build, ...r });
    console.error(`${attack.padEnd(12)} ${build}: n=${r.n} p50=${r.p50.toFixed(1)} p99=${r.p99.toFixed(1)} max=${r.max.toFixed(1)} ms (${r.sent} datagrams)`);
  }
}
const results = { name: 'turn-attack', config: { rate, burst, burstEveryMs, seconds, root }, rows };
console.error(`results: ${saveResults('turn-attack', results, args.json)}`);
console.log(`\n${report.render(results).section}`);
