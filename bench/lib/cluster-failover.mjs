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
import { cpuBetween, cpuSnapshot, processCpuSeconds } from './proc-cpu.mjs';
import { fmt, fmtInt } from './report.mjs';

/** After the last resume, peer-left events are still counted this long (node death detection aims under 5 s). */
const SETTLE_MS = 7_000;
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
      clients, roomSize, connectS, expected, lost, resumed: times.length, notBack: expected - back(),
      p50: quantileOf(times, 0.5), p99: quantileOf(times, 0.99), max: times.at(-1) ?? NaN,
      newIds: stats.newIds, peerLeft: stats.peerLeft, errors: stats.errors, stillOpen: all.filter((c) => c.state === 'open').length,
      stormS: seconds, stormCalls, others, genCores: selfS / seconds,
      survivorCores: (sum(stormEnd) - sum(before)) / seconds,
      redisCores: (stormEnd.redis - before.redis) / seconds,
      peakCores: peak,
      perNode: survivors.map((n, i) => (stormEnd.nodes[i] - before.nodes[i]) / seconds),
    };
  } finally {
    await Promise.all(all.map((c) => c.close().catch(() => {})));
    proxy.close();
    await Promise.all(nodes.map((n) => stop(n.child)));
  }
}

/** The report of one or more failover runs (one table row each). */
export function failoverReport(runs) {
  const r0 = runs[0];
  const errors = (r) => Object.entries(r.errors).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const L = [
    `Failover: three \`rallypoint serve --redis\` nodes (pinned with Redis to CPU 0) behind a round-robin TCP proxy in the bench process (a refused connection goes to the next node, ` +
      `a dead upstream closes the client's connection), ${fmtInt(r0.clients)} SignalingClients (dist/, \`ws\`, default jittered backoff) in rooms of ${r0.roomSize}. ` +
      `One node SIGKILLed; time from the kill to each of its clients' \`welcome\` with \`resumed: true\` on a survivor. ${runs.length} run(s), fresh nodes each:`,
    '',
    '| run | clients on the killed node | resumed | not back | p50 s | p99 s | max s | new ids | peer-left (all clients) | survivors\' CPU during the storm | Redis CPU | Redis commands per moved client |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|',
  ];
  runs.forEach((r, i) =>
    L.push(
      `| ${i + 1} | ${fmtInt(r.expected)} | ${fmtInt(r.resumed)} | ${fmtInt(r.notBack)} | ${fmt(r.p50 / 1000, 3)} | ${fmt(r.p99 / 1000, 3)} | ${fmt(r.max / 1000, 3)} | ${r.newIds} | ${r.peerLeft} | ` +
        `${fmt(r.survivorCores, 2)} cores over ${fmt(r.stormS, 2)} s (${r.perNode.map((x) => fmt(x, 2)).join(' + ')}), peak ${fmt(r.peakCores, 2)} incl. Redis | ${fmt(r.redisCores, 2)} cores | ${fmt(r.stormCalls / r.expected, 1)} |`,
    ),
  );
  L.push(
    '',
    `- peer-left counted from the kill until ${SETTLE_MS / 1000} s after the last client was back. Per run: ` +
      runs
        .map(
          (r, i) =>
            `${i + 1}: joined in ${fmt(r.connectS, 1)} s; ${fmtInt(r.lost)} clients lost their connection (only the killed node's should); ${fmtInt(r.stillOpen)} open at the end; client errors: ${errors(r)}; ` +
            `bench process (clients, proxy) ${fmt(r.genCores, 2)} cores${r.genCores > 0.9 ? ' (saturated: the client side may have been the limit)' : ''}, other processes ${fmt(r.others, 2)} cores`,
        )
        .join('; ') +
      '.',
    '- "peak": the most the survivors and Redis used in one 100 ms sample; /proc counts in 10 ms ticks, so a sample may read up to ~0.1 core high.',
  );
  return L;
}
