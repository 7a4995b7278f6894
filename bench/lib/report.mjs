/**
 * What the bench scripts put around their figures: the machine they ran on, number
 * formatting, and rewriting their own section of BENCHMARKS.md.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

export const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
export const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
export const pct = (n) => (Number.isFinite(n) ? `${(n * 100).toFixed(0)} %` : 'n/a');

export function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function machine() {
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
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

export const machineLine = (m) =>
  `Machine: ${m.cpuModel}, ${m.cores} cores, ${fmt(m.ramGiB, 0)} GiB RAM, Node ${m.node}, ${m.os}. Run: ${m.date}.`;

/**
 * Replaces the section of `root`/BENCHMARKS.md whose heading line matches `heading` (a
 * RegExp with the m flag), up to the next "## " line, with `section`; appends it if absent.
 */
export function writeSection(root, heading, section) {
  const file = join(root, 'BENCHMARKS.md');
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\nFigures from one machine; compare ratios, not absolute numbers.\n';
  const start = text.search(heading);
  if (start === -1) {
    text = `${text.trimEnd()}\n\n${section.trimEnd()}\n`;
  } else {
    const after = text.slice(start).search(/\n## /);
    const rest = after === -1 ? '' : text.slice(start + after + 1);
    text = `${text.slice(0, start)}${section.trimEnd()}\n${rest ? `\n${rest}` : ''}`;
  }
  writeFileSync(file, text);
  return file;
}
