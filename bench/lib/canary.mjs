/**
 * Machine-stall detector, forked by bench/peer.mjs for the whole run: a process that does
 * nothing but a 1 ms timer. When it does not get a CPU for a while (other jobs, the VM
 * being descheduled, memory reclaim), its tick comes late; every gap over GAP_MS is recorded
 * as a stall [start, end] on CLOCK_MONOTONIC, the clock the Node peers stamp messages with.
 * A latency sample that overlaps such a stall was (at least partly) delayed by the machine,
 * not by the code under test. IPC: {id, from, to} -> {id, stalls: [[start, end], ...]}.
 */
const TICK_MS = 1;
const GAP_MS = 3;
const KEEP_MS = 600_000;

const now = () => Number(process.hrtime.bigint()) / 1e6;
const stalls = [];
let last = now();
setInterval(() => {
  const t = now();
  if (t - last > GAP_MS) {
    stalls.push([last, t]);
    while (stalls.length && stalls[0][1] < t - KEEP_MS) stalls.shift();
  }
  last = t;
}, TICK_MS);

process.on('message', ({ id, from, to }) => {
  process.send({ id, stalls: stalls.filter(([a, b]) => b > from && a < to) });
});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
