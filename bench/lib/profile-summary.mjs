#!/usr/bin/env node
/**
 * Summarizes a V8 .cpuprofile (from `node bench/signaling.mjs --servers ours --cpu-prof DIR`):
 * self time by function and total (inclusive) time of selected frames.
 *   node bench/lib/profile-summary.mjs DIR/CPU.*.cpuprofile [top=30]
 */
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: profile-summary.mjs FILE.cpuprofile [top]');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map();
const deltas = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  self.set(id, (self.get(id) ?? 0) + (deltas[i] ?? 0));
}
const label = (n) => {
  const f = n.callFrame;
  const where = f.url ? `${f.url.replace(/^.*\/(node_modules\/|dist\/)/, '$1')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};

let total = 0;
let idle = 0;
const byLabel = new Map();
const inclusive = new Map();
for (const [id, t] of self) {
  total += t;
  const n = nodes.get(id);
  const l = label(n);
  if (n.callFrame.functionName === '(idle)') idle += t;
  byLabel.set(l, (byLabel.get(l) ?? 0) + t);
  // Inclusive time: charge every distinct ancestor label once per sample stack.
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const cl = label(nodes.get(cur));
    if (seen.has(cl)) continue;
    seen.add(cl);
    inclusive.set(cl, (inclusive.get(cl) ?? 0) + t);
  }
}
const busy = total - idle;
const pct = (t) => `${((t / busy) * 100).toFixed(1).padStart(5)} %`;
console.log(`profile ${(total / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s; percentages of busy time`);
console.log(`\nself time, top ${top}:`);
for (const [l, t] of [...byLabel].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${l}`);
console.log(`\ninclusive time, top ${top}:`);
for (const [l, t] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${l}`);

// Self time by category, for the relay path.
const categories = [
  ['socket write syscall (writev)', (n) => n.callFrame.functionName === 'writev' || n.callFrame.functionName === 'writeUtf8String' || n.callFrame.functionName === 'writeBuffer'],
  ['JSON.parse (codec parseJson / bare handler)', (n) => n.callFrame.functionName === 'parseJson'],
  ['JSON.stringify + stamping (handleSignal)', (n) => n.callFrame.functionName === 'handleSignal'],
  ['bare relay handler (parse+lookup+stringify)', (n) => n.callFrame.url.includes('bench/lib/server-child.mjs')],
  ['PeerJS', (n) => n.callFrame.url.includes('node_modules/peer/')],
  ['zod validation', (n) => n.callFrame.url.includes('node_modules/zod/')],
  ['prom-client metrics', (n) => n.callFrame.url.includes('node_modules/prom-client/')],
  ['rallypoint, other', (n) => n.callFrame.url.includes('/dist/signaling/')],
  ['ws framing/parsing', (n) => n.callFrame.url.includes('node_modules/ws/')],
  ['garbage collector', (n) => n.callFrame.functionName === '(garbage collector)'],
  ['Node streams, net, buffers, events', (n) => n.callFrame.url.startsWith('node:')],
];
const byCat = new Map();
for (const [id, t] of self) {
  const n = nodes.get(id);
  if (n.callFrame.functionName === '(idle)') continue;
  const cat = categories.find(([, f]) => f(n))?.[0] ?? 'other (native, program, startup)';
  byCat.set(cat, (byCat.get(cat) ?? 0) + t);
}
console.log('\nself time by category:');
for (const [c, t] of [...byCat].sort((a, b) => b[1] - a[1])) console.log(`${pct(t)}  ${c}`);
