/**
 * Failover under load, for bench/cluster.mjs: three `rallypoint serve --redis` nodes behind
 * a round-robin TCP proxy (in this process; the stand-in for a load balancer: a refused
 * upstream connection is retried on the next node, like nginx's proxy_next_upstream, and a
 * dead upstream closes the client's connection), `clients` real SignalingClients (dist/,
 * `ws`, default jittered backoff) in rooms of `roomSize`. One node is SIGKILLed; measured:
 * the time from the kill until each of its clients has a `welcome` with `resumed: true`
 * on a survivor, how many peer-left events and new ids there were (0 is right), and the
 * survivors' and Redis's CPU during the reconnect storm.
 */
import { connect, createServer } from 'node:net';
import WebSocket from 'ws';
import { SignalingClient } from '../../dist/signaling/client/index.js';
import { startRallypoint, stop } from './cluster-procs.mjs';
import { fmt, fmtInt } from './format.mjs';
import { cpuBetween, cpuSnapshot, processCpuSeconds } from './proc-cpu.mjs';

/** After the last resume, peer-left events are still counted this long (node death detection aims under 5 s). */
export const SETTLE_MS = 7_000;
/** The storm is given up on after this long. */
const STORM_TIMEOUT_MS = 60_000;
const CONNECT_CONCURRENCY = 50;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP proxy on 127.0.0.1 handing each connection to the next node (round robin). */
function roundRobinProxy(ports) {
  let next = 0;
  const active = new Map(ports.map((p) => [p, 0]));
  const server = createServer((down) => {
    down.on('error', () => {});
    const attempt = (tries) => {
      const port = ports[next++ % ports.length];
      const up = connect(port, '127.0.0.1');
      up.once('error', () => {
        if (tries + 1 < ports.length && !down.destroyed) attempt(tries + 1);
        else down.destroy();
      });
      up.once('connect', () => {
        up.on('error', () => {});
        active.set(port, active.get(port) + 1);
        up.once('close', () => {
          active.set(port, active.get(port) - 1);
          down.destroy();
        });
        down.once('close', () => up.destroy());
        down.pipe(up);
        up.pipe(down);
      });
    };
    attempt(0);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: server.address().port, active, close: () => server.close() })));
}

const quantileOf = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : NaN);

export async function failover({ redis, cpus, clients, roomSize, log }) {
  const nodes = await Promise.all(['f1', 'f2', 'f3'].map((nodeId) => startRallypoint({ redisUrl: redis.url, nodeId, cpus })));
  const proxy = await roundRobinProxy(nodes.map((n) => n.port));
  const url = `ws://127.0.0.1:${proxy.port}/ws`;
  const all = [];
  let killedAt = Infinity;
  const stats = { peerLeft: 0, newIds: 0, errors: {}, resumedAt: [] };
  try {
    const started = performance.now();
    for (let i = 0; i < clients; i += CONNECT_CONCURRENCY) {
      const batch = [];
      for (let j = i; j < Math.min(clients, i + CONNECT_CONCURRENCY); j++) {
        const c = new SignalingClient({ url, room: `storm-${Math.floor(j / roomSize)}`, WebSocket });
        c.on('peer-left', () => {
          if (performance.now() > killedAt) stats.peerLeft++;
        });
        c.on('error', (e) => (stats.errors[e.code] = (stats.errors[e.code] ?? 0) + 1));
        c.on('reconnecting', () => {
          if (performance.now() > killedAt && c.lostAt === undefined) c.lostAt = performance.now();
        });
        c.on('open', (w) => {
          if (c.lostAt === undefined || c.backAt !== undefined) return;
          c.backAt = performance.now();
          if (w.resumed) stats.resumedAt.push(c.backAt - killedAt);
          else stats.newIds++;
        });
        all.push(c);
        batch.push(c.connect());
      }
      await Promise.all(batch);
    }
    const connectS = (performance.now() - started) / 1000;
    await sleep(2000);
    const victim = nodes[0];
    const expected = proxy.active.get(victim.port);
    log(`failover: ${fmtInt(clients)} clients joined in ${fmt(connectS, 1)} s, ${[...proxy.active.values()].join(' / ')} per node; SIGKILL ${victim.url} (${expected} clients)`);
    const survivors = nodes.slice(1);
    const cpuNow = () => ({ at: performance.now(), nodes: survivors.map((n) => processCpuSeconds(n.pid)), redis: processCpuSeconds(redis.pid) });
    const totalCalls = async () => Object.values(await redis.commandCalls()).reduce((a, b) => a + b, 0);
    const callsBefore = await totalCalls();
    const before = cpuNow();
    const machineBefore = cpuSnapshot();
    const selfBefore = process.cpuUsage();
    const samples = [before];
    killedAt = performance.now();
    victim.child.kill('SIGKILL');
    const back = () => all.filter((c) => c.backAt !== undefined).length;
    while (back() < expected && performance.now() - killedAt < STORM_TIMEOUT_MS) {
      await sleep(100);
      samples.push(cpuNow());
    }
    const stormEnd = cpuNow();
    // The machine's busy cores minus ours (cpuBetween's own split would miss the killed node's CPU).
    const selfS = ((u) => (u.user + u.system) / 1e6)(process.cpuUsage(selfBefore));
    const ourS = stormEnd.nodes.reduce((a, b) => a + b, 0) - before.nodes.reduce((a, b) => a + b, 0) + stormEnd.redis - before.redis + selfS;
    const others = cpuBetween(machineBefore, cpuSnapshot()).busy - ourS / ((stormEnd.at - before.at) / 1000);
    const stormCalls = (await totalCalls()) - callsBefore;
    const lost = all.filter((c) => c.lostAt !== undefined).length;
    log(`failover: ${back()} of ${expected} back after ${fmt((stormEnd.at - killedAt) / 1000, 2)} s; waiting ${SETTLE_MS / 1000} s for late peer-left`);
    await sleep(SETTLE_MS);
    const seconds = (stormEnd.at - before.at) / 1000;
    const sum = (s) => s.nodes.reduce((a, b) => a + b, 0);
    let peak = 0;
    for (let i = 1; i < samples.length; i++) {
      const dt = (samples[i].at - samples[i - 1].at) / 1000;
      peak = Math.max(peak, (sum(samples[i]) - sum(samples[i - 1]) + samples[i].redis - samples[i - 1].redis) / dt);
    }
    const times = [...stats.resumedAt].sort((a, b) => a - b);
    return {
      clients,
      roomSize,
      connectS,
      expected,
      lost,
      resumed: times.length,
      notBack: expected - back(),
      p50: quantileOf(times, 0.5),
      p99: quantileOf(times, 0.99),
      max: times.at(-1) ?? NaN,
      newIds: stats.newIds,
      peerLeft: stats.peerLeft,
      errors: stats.errors,
      stillOpen: all.filter((c) => c.state === 'open').length,
      stormS: seconds,
      stormCalls,
      others,
      genCores: selfS / seconds,
      survivorCores: (sum(stormEnd) - sum(before)) / seconds,
      redisCores: (stormEnd.redis - before.redis) / seconds,
      peakCores: peak,
      perNode: survivors.map((_n, i) => (stormEnd.nodes[i] - before.nodes[i]) / seconds),
    };
  } finally {
    await Promise.all(all.map((c) => c.close().catch(() => {})));
    proxy.close();
    await Promise.all(nodes.map((n) => stop(n.child)));
  }
}

/** The report of one or more failover runs (one table row each). */
