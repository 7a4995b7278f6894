/**
 * Runs the built CLI (`dist/signaling/cli/main.js`) as a child process; every child started
 * here is killed by `killCliChildren()` (call it in afterEach).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const cli = fileURLToPath(new URL('../../dist/signaling/cli/main.js', import.meta.url));
const children: ChildProcessWithoutNullStreams[] = [];

export const START_LINE = /^rallypoint listening on (http:\/\/[^\s]+) \(signaling (ws:\/\/[^\s)]+)\)$/;
export const TURN_LINE = /^rallypoint TURN listening on udp:\/\/(\S+):(\d+) \(relay (\S+)\)$/;

export function start(cmd: string, args: string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: 'pipe' });
  children.push(child);
  return child;
}

/** Starts `node dist/signaling/cli/main.js ARGS`. */
export function startCli(args: string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  return start(process.execPath, [cli, ...args], env);
}

const readers = new WeakMap<ChildProcessWithoutNullStreams, { rl: Interface; lines: string[]; waiters: ((l: string) => void)[] }>();

/** Resolves with the child's next stdout line; rejects if it exits first. */
export async function nextLine(child: ChildProcessWithoutNullStreams): Promise<string> {
  let r = readers.get(child);
  if (!r) {
    const state = { rl: createInterface({ input: child.stdout }), lines: [] as string[], waiters: [] as ((l: string) => void)[] };
    state.rl.on('line', (line) => {
      const w = state.waiters.shift();
      if (w) w(line);
      else state.lines.push(line);
    });
    readers.set(child, state);
    r = state;
  }
  const queued = r.lines.shift();
  if (queued !== undefined) return queued;
  const reader = r;
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`exited ${String(code)} before printing`);
  });
  return Promise.race([new Promise<string>((resolve) => reader.waiters.push(resolve)), exited]);
}

/** Runs the CLI to completion. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = startCli(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

export function killCliChildren(): void {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
