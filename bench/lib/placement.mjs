/**
 * Where the bench scripts' processes run. "pinned" (the default with 2+ CPUs): while
 * saturating, the server side runs on CPU 0 and the load generator on the others
 * (`taskset`), so the generator never takes the servers' CPU; "shared": no pinning.
 * Also waitQuiet(): other jobs may share the machine.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { fmt } from './format.mjs';
import { cpuBetween, cpuSnapshot } from './proc-cpu.mjs';

/** A placement for `mode` ('pinned' or 'shared'); `name` says what it became ("shared (taskset failed)"). */
export function placement(mode) {
  const ncpu = os.cpus().length;
  const p = {
    name: mode === 'pinned' && ncpu > 1 ? 'pinned' : 'shared',
    get pinned() {
      return p.name === 'pinned';
    },
    /** The CPUs of the server side when pinned (undefined: anywhere). */
    get serverCpus() {
      return p.pinned ? '0' : undefined;
    },
    loadCpus: ncpu > 1 ? `1-${ncpu - 1}` : '0',
    allCpus: `0-${ncpu - 1}`,
    /** Sets the CPU affinity of processes `pids` (every thread); nothing when not pinned. */
    pin(pids, cpus) {
      if (!p.pinned || cpus === undefined) return;
      try {
        for (const pid of pids) execFileSync('taskset', ['-a', '-cp', cpus, String(pid)], { stdio: 'ignore' });
      } catch {
        p.name = 'shared (taskset failed)';
      }
    },
    /** [file, argv] that starts a native program on `cpus` (under taskset, so every thread it creates inherits them). */
    command(file, argv, cpus) {
      return p.pinned && cpus !== undefined ? ['taskset', ['-c', cpus, file, ...argv]] : [file, argv];
    },
  };
  return p;
}

/**
 * Waits (up to maxMs) until other processes leave the CPUs nearly idle (other jobs may share
 * the machine); says so when they did not. Resolves with { ok, cores } (the others' cores).
 */
export async function waitQuiet(maxMs = 3000) {
  const until = performance.now() + maxMs;
  let others;
  do {
    const a = cpuSnapshot();
    await new Promise((r) => setTimeout(r, 400));
    others = cpuBetween(a, cpuSnapshot()).others;
    if (!(others >= 0.15)) return { ok: true, cores: others };
  } while (performance.now() < until);
  console.log(`(other processes still use ${fmt(others, 2)} cores after ${maxMs / 1000} s; measuring anyway)`);
  return { ok: false, cores: others };
}
