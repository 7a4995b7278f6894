/**
 * CPU accounting from /proc (Linux; elsewhere every figure is NaN): the machine's busy time,
 * and the CPU time of this process and all its descendants (the Node peer children and
 * Chromium's processes). What the machine spent beyond our tree is other jobs' load.
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

const HZ = 100; // USER_HZ; /proc reports clock ticks

/** The machine's idle and total CPU ticks so far (/proc/stat), or null off Linux. */
export function machineTicks() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return { idle: f[3] + (f[4] ?? 0), total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
  } catch {
    return null;
  }
}

/** The machine's busy share (0..1, of all its cores) between two machineTicks(); NaN without both. */
export const busyBetween = (a, b) => (a && b ? 1 - (b.idle - a.idle) / (b.total - a.total) : NaN);

function machineBusyTicks() {
  const t = machineTicks();
  return t ? t.total - t.idle : NaN;
}

function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after the name: state(3) ppid(4) ... utime(14) stime(15) -> rest index 0 = field 3
    return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return null;
  }
}

/** CPU clock ticks (user + system, all its threads) of one process; NaN once it is gone. */
export function processTicks(pid) {
  return readStat(pid)?.ticks ?? NaN;
}

/** CPU ticks per second (USER_HZ). */
export const TICKS_PER_SECOND = HZ;

/** CPU time (user + system, all its threads) of one process in seconds; NaN once it is gone. */
export function processCpuSeconds(pid) {
  const st = readStat(pid);
  return st ? st.ticks / HZ : NaN;
}

/**
 * Seconds the main thread of `pid` was runnable but waiting for a CPU (/proc/PID/schedstat,
 * second field; needs schedstats, on by default); NaN once it is gone or when unavailable.
 */
export function runQueueWaitSeconds(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
  } catch {
    return NaN;
  }
}

/** Pids of `root` and every process below it. */
export function descendants(root = process.pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(name);
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop();
    out.push(pid);
    for (const c of children.get(pid) ?? []) stack.push(c);
  }
  return out;
}

/** Microseconds during which some runnable task waited for a CPU (Linux PSI), or NaN. */
export function cpuPressureUs() {
  try {
    const m = readFileSync('/proc/pressure/cpu', 'utf8').match(/^some .*total=(\d+)/m);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

export function cpuSnapshot() {
  const pressure = cpuPressureUs();
  try {
    let ours = 0;
    for (const pid of descendants()) ours += readStat(pid)?.ticks ?? 0;
    return { at: performance.now(), busy: machineBusyTicks(), ours, pressure };
  } catch {
    return { at: performance.now(), busy: NaN, ours: NaN, pressure };
  }
}

/**
 * Cores used between two snapshots: by our process tree, and by everything else (other
 * jobs, plus kernel work not charged to a process). A process of ours that exited in
 * between is not counted, so call it around phases whose processes stay alive.
 */
export function cpuBetween(a, b) {
  const s = (b.at - a.at) / 1000;
  const ours = (b.ours - a.ours) / HZ / s;
  const busy = (b.busy - a.busy) / HZ / s;
  // Share of the time during which some runnable task waited for a CPU (PSI "some").
  const pressure = (b.pressure - a.pressure) / 1e6 / s;
  return { ours, others: Math.max(0, busy - ours), busy, pressure, cores: os.cpus().length };
}

/** Resident set size of one process in bytes (/proc/PID/status VmRSS); NaN once it is gone. */
export function processRssBytes(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m)[1]) * 1024;
  } catch {
    return NaN;
  }
}
