#!/usr/bin/env node
/**
 * Before and after of the hot paths, for a change that should not cost speed (a restructure):
 * this tree's build against another commit's, under the same load, alternated in one run.
 * Measures into test-artifacts/bench/hotpaths.json (or --json FILE), then renders the
 * "## Hot paths before and after" section of BENCHMARKS.md and its summary rows from it
 * (bench/report/hotpaths.mjs).
 *
 *   npm run bench:hotpaths                       # build, then the full run (~12 min)
 *   node bench/hotpaths.mjs --before 1bc3260 --rounds 3 --no-write
 *   options: --before REV (default 1bc3260: the tree before the restructure into files by job)
 *            --rounds N (signaling and TURN rounds per build) --micro-rounds N
 *            --skip signaling,relay,turn,channels
 *
 * The other commit is exported with `git archive` into a temporary directory, given this
 * tree's node_modules (a symlink) and compiled with tsc; nothing of this checkout changes.
 * 1. signaling: bench/signaling.mjs with servers `ours` and `ours@<before>/dist`: signals,
 *    then `relay` frames (the data fallback's), interleaved rounds (which build goes first
 *    alternates), each server its own process;
 * 2. turn: bench/turn.mjs with `rallypoint` and `rallypoint@<before>/dist`, ChannelData and
 *    Send indications;
 * 3. channels: bench/lib/channel-micro.mjs, the peer library's reliable and unreliable
 *    streams over an in-memory data channel pair, one process per build and round, the
 *    order of the builds swapped every round.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, list } from './lib/args.mjs';
import { runMain, track, trackDir, watchdog } from './lib/children.mjs';
import { machine } from './lib/machine.mjs';
import { waitQuiet } from './lib/placement.mjs';
import { loadResults, publish } from './lib/results.mjs';
import * as report from './report/hotpaths.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

const args = benchArgs({
  before: { type: 'string', default: '1bc3260' },
  rounds: { type: 'string', default: '7' },
  'micro-rounds': { type: 'string', default: '10' },
  skip: { type: 'string', default: '' },
});
const CONFIG = {
  before: args.before,
  beforeCommit: git('rev-parse', '--short', args.before),
  after: `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ' + uncommitted changes' : ''}`,
  rounds: Number(args.rounds),
  microRounds: Number(args['micro-rounds']),
  skip: list(args.skip),
};

function git(...argv) {
  return execFileSync('git', argv, { cwd: root, encoding: 'utf8' }).trim();
}

/** The other commit, compiled: its dist/ directory. */
function buildBefore(rev) {
  const dir = trackDir(mkdtempSync(join(os.tmpdir(), 'rallypoint-before-')));
  execFileSync('sh', ['-c', `git archive ${JSON.stringify(rev)} | tar -x -C ${JSON.stringify(dir)}`], { cwd: root });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], { cwd: dir, stdio: 'inherit' });
  return join(dir, 'dist');
}

/** Runs a bench script to its end, its output passed through; rejects on a non-zero exit. */
function runScript(script, argv) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(process.execPath, [join(here, script), ...argv], { cwd: root, stdio: 'inherit' }));
    child.on('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${script} ${argv.join(' ')} exited ${code ?? signal}`))));
  });
}

/** One channel-micro run of a build: its JSON line. */
function channelMicro(dist) {
  const out = execFileSync(process.execPath, [join(here, 'lib', 'channel-micro.mjs'), dist], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(out.trim().split('\n').pop());
}

async function main() {
  watchdog(20 * 60_000);
  const beforeDist = buildBefore(CONFIG.before);
  const afterDist = join(root, 'dist');
  const tmp = trackDir(mkdtempSync(join(os.tmpdir(), 'rallypoint-hotpaths-')));
  const results = { name: 'hotpaths', machine: machine(), config: CONFIG };
  const started = performance.now();

  for (const frames of ['signal', 'relay']) {
    if (CONFIG.skip.includes(frames === 'signal' ? 'signaling' : 'relay')) continue;
    const json = join(tmp, `signaling-${frames}.json`);
    await runScript('signaling.mjs', ['--servers', `ours,ours@${beforeDist}`, '--frames', frames, '--alternate', '--rounds', String(CONFIG.rounds), '--skip-idle', '--no-write', '--json', json]);
    const r = loadResults(json);
    results[frames === 'signal' ? 'signaling' : 'relay'] = r.results.map((x) => ({
      build: x.kind === 'ours' ? 'after' : 'before',
      round: x.round,
      rate: x.saturated.rate,
      cpuUsPerMsg: x.saturated.cpuUsPerMsg,
      disturbed: x.saturated.disturbed,
      pacedP50: x.paced?.p50,
      pacedP99: x.paced?.p99,
    }));
  }

  if (!CONFIG.skip.includes('turn')) {
    const json = join(tmp, 'turn.json');
    await runScript('turn.mjs', ['--servers', `rallypoint,rallypoint@${beforeDist}`, '--methods', 'channel,send', '--alternate', '--rounds', String(CONFIG.rounds), '--no-write', '--json', json]);
    results.turn = loadResults(json).results.map((x) => ({
      build: x.kind === 'rallypoint' ? 'after' : 'before',
      method: x.method,
      round: x.round,
      packetsPerS: x.saturated.packetsPerS,
      cpuUsPerPacket: x.saturated.cpuUsPerPacket,
      disturbed: x.saturated.disturbed,
      pacedP50: x.paced?.p50,
      pacedP99: x.paced?.p99,
    }));
  }

  if (!CONFIG.skip.includes('channels')) {
    results.channels = [];
    for (let round = 0; round < CONFIG.microRounds; round++) {
      const order = round % 2 === 0 ? ['after', 'before'] : ['before', 'after'];
      for (const build of order) {
        await waitQuiet(5000);
        results.channels.push({ build, round, ...channelMicro(build === 'after' ? afterDist : beforeDist) });
      }
    }
  }

  results.seconds = (performance.now() - started) / 1000;
  publish('hotpaths', results, report, { json: args.json, noWrite: args['no-write'] });
}

runMain(main);
