/**
 * The processes a bench script starts, and how it talks to them. Every child started or
 * tracked here is SIGKILLed on exit, on failure, on SIGINT/SIGTERM/SIGHUP and when the
 * script's watchdog fires; temporary directories registered here are removed then too.
 */
import { fork, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const children = new Set();
const tmpDirs = new Set();
const cleanups = new Set();

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Kills `child` with the others; returns it. */
export function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** A directory removed by killAll(); returns it. */
export function trackDir(dir) {
  tmpDirs.add(dir);
  return dir;
}

export function untrackDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  tmpDirs.delete(dir);
}

/** Something else to undo on every exit path (synchronous). */
export function onCleanup(fn) {
  cleanups.add(fn);
}

/** SIGKILLs every tracked child, removes the tracked directories, runs the cleanups. */
export function killAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  tmpDirs.clear();
  for (const fn of cleanups) fn();
  cleanups.clear();
}

let installed = false;
/** killAll() on exit and on SIGINT/SIGTERM/SIGHUP (then exit 130). Idempotent. */
export function killOnExit() {
  if (installed) return;
  installed = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      console.error(`\n${sig}: stopping children`);
      killAll();
      process.exit(130);
    });
  }
}

/** Stops the script (exit 3) if it is still running after `ms`. */
export function watchdog(ms) {
  setTimeout(() => {
    console.error(`benchmark exceeded its time budget (${ms / 1000} s); stopping`);
    killAll();
    process.exit(3);
  }, ms).unref();
}

/** Runs the script's main(): exit 0 when it resolves, 1 (with the stack) when it rejects; children killed either way. */
export function runMain(main) {
  killOnExit();
  main().then(
    () => {
      killAll();
      process.exit(0);
    },
    (err) => {
      console.error(err?.stack ?? err);
      killAll();
      process.exit(1);
    },
  );
}

/** A Node child with an IPC channel, its output inherited, run from the repository root. */
export function forkChild(file, argv = [], { execArgv = [], env } = {}) {
  return track(fork(file, argv, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd: root, ...(env ? { env } : {}) }));
}

/** A native program, its output to `out` (default: ignored). */
export function spawnChild(file, argv, { out } = {}) {
  return track(spawn(file, argv, { stdio: ['ignore', out ?? 'ignore', out ?? 'ignore'] }));
}

/**
 * Resolves with the next IPC message of `child` that satisfies `pred`; rejects when the
 * child reports `{ type: 'fatal' }`, exits, or says nothing fitting within `timeoutMs`.
 */
export function nextMessage(child, pred, timeoutMs, label) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (m?.type === 'fatal') return done(new Error(`${label}: child failed: ${m.error}`));
      if (pred(m)) done(null, m);
    };
    const onExit = (code, sig) => done(new Error(`${label}: child exited (${code ?? sig}) before answering`));
    const timer = setTimeout(() => done(new Error(`${label}: no answer within ${timeoutMs} ms`)), timeoutMs);
    function done(err, m) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(m);
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Sends `msg` to `child` and resolves with its next message of type `type`. */
export function ask(child, msg, type, timeoutMs, label) {
  const answer = nextMessage(child, (m) => m?.type === type, timeoutMs, label);
  child.send(msg);
  return answer;
}

/**
 * Stops `child`: `{ cmd: 'exit' }` over IPC when `graceful` (the bench children exit on it),
 * else SIGKILL; SIGKILL anyway after `killAfterMs`.
 */
export function stopChild(child, { graceful = true, killAfterMs = 3000 } = {}) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (!graceful) return void child.kill('SIGKILL');
    try {
      child.send({ cmd: 'exit' });
    } catch {
      child.kill('SIGKILL');
    }
  });
}
