/**
 * What the reports say about the machine a run had: CPU model, cores, memory, Node, the
 * kernel, versions of packages and programs, the load average, the date. CPU accounting
 * during a run (ours and other jobs') is in proc-cpu.mjs.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt } from './format.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** The version in node_modules/<name>/package.json, or '?'. */
export function packageVersion(name) {
  try {
    return JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

/** The last line `file --version` prints (to stdout or, failing, stderr), or 'unknown'. */
export function programVersion(file, args = ['--version']) {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .trim()
      .split('\n')
      .pop();
  } catch (err) {
    return (
      String(err.stdout ?? '')
        .trim()
        .split('\n')
        .pop() || 'unknown'
    );
  }
}

/** The machine, now; `extra` is merged in (versions of what the script compares). */
export function machine(extra = {}) {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m);
    if (m) cpuModel = m[1].trim();
  } catch {
    // not Linux
  }
  return {
    cpuModel,
    cores: os.cpus().length,
    ramGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    kernel: os.release(),
    loadavg: os.loadavg(),
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    ...extra,
  };
}

export const machineLine = (m) => `Machine: ${m.cpuModel}, ${m.cores} cores, ${fmt(m.ramGiB, 0)} GiB RAM, Node ${m.node}, ${m.os}. Run: ${m.date}.`;
