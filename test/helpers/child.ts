/**
 * Child processes of the test run (redis-server, nginx) that must never outlive it: each is
 * started under `setpriv --pdeathsig` (util-linux), so the kernel signals it when the test
 * worker dies, even by SIGKILL; a normal exit of the worker kills the rest synchronously.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { describe } from 'vitest';

const SETPRIV = '/usr/bin/setpriv';
const hasSetpriv = ((): boolean => {
  try {
    accessSync(SETPRIV, constants.X_OK);
    return true;
  } catch {
    return false;
  }
})();

export interface OwnedChild {
  readonly child: ChildProcessWithoutNullStreams;
  /** The last lines of stdout and stderr, for error messages. */
  readonly output: string[];
  /** Called with every line of stdout and stderr. */
  readonly listeners: Set<(line: string) => void>;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<ChildProcessWithoutNullStreams>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/**
 * Spawns `cmd args`. `deathSignal` is what the kernel sends it if this process dies first
 * (SIGKILL for a store with nothing to save; SIGTERM for a master process that must take
 * its workers down with it).
 */
export function spawnOwned(cmd: string, args: string[], opts: { cwd?: string; deathSignal?: 'SIGKILL' | 'SIGTERM' } = {}): OwnedChild {
  const sig = (opts.deathSignal ?? 'SIGKILL').replace(/^SIG/, '');
  // setpriv execs the command in place: the pid is the command's own.
  const child = hasSetpriv ? spawn(SETPRIV, ['--pdeathsig', sig, '--', cmd, ...args], { cwd: opts.cwd, stdio: 'pipe' }) : spawn(cmd, args, { cwd: opts.cwd, stdio: 'pipe' });
  live.add(child);
  const output: string[] = [];
  const listeners = new Set<(line: string) => void>();
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      output.push(line);
      if (output.length > 200) output.shift();
      for (const l of listeners) l(line);
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (err) => {
      output.push(`spawn failed: ${err.message}`);
      live.delete(child);
      resolve({ code: null, signal: null });
    });
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  return { child, output, listeners, exited };
}

/** True while the process has not exited (a stopped process counts as running). */
export function running(c: OwnedChild): boolean {
  return c.child.exitCode === null && c.child.signalCode === null && c.child.pid !== undefined;
}

/**
 * Resolves when a line of stdout or stderr matches `pattern`; rejects, with the output so
 * far, when the process exits first or after `timeoutMs`.
 */
export function waitForLine(c: OwnedChild, pattern: RegExp, timeoutMs = 10_000, what = 'process'): Promise<string> {
  const found = c.output.find((l) => pattern.test(l));
  if (found !== undefined) return Promise.resolve(found);
  return new Promise<string>((resolve, reject) => {
    const onLine = (line: string): void => {
      if (!pattern.test(line)) return;
      done();
      resolve(line);
    };
    const done = (): void => {
      clearTimeout(timer);
      c.listeners.delete(onLine);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what}: no line matching ${String(pattern)} within ${timeoutMs} ms; output:\n${c.output.join('\n')}`));
    }, timeoutMs);
    c.listeners.add(onLine);
    void c.exited.then(({ code, signal }) => {
      done();
      // The 'line' events of the last output are emitted before 'exit' resolves us here.
      const last = c.output.find((l) => pattern.test(l));
      if (last !== undefined) resolve(last);
      else reject(new Error(`${what} exited (code ${String(code)}, signal ${String(signal)}) before printing ${String(pattern)}; output:\n${c.output.join('\n')}`));
    });
  });
}

/** A TCP port that was free a moment ago on 127.0.0.1 (the caller retries on EADDRINUSE). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Why these executables cannot run here (the first one missing), or null when they all can. */
export function missingTools(tools: { path: string; pkg: string }[]): string | null {
  for (const t of tools) {
    try {
      accessSync(t.path, constants.X_OK);
    } catch {
      return `no ${t.path} (apt-get install ${t.pkg})`;
    }
  }
  return null;
}

/**
 * `describe` for suites that need system tools. Outside CI a missing tool skips the suite
 * with a printed reason; under CI=true nothing is skipped: the suite runs and fails.
 */
export function describeNeeding(missing: string | null, name: string, fn: () => void): void {
  if (missing && process.env.CI !== 'true') {
    console.warn(`skipping "${name}": ${missing}`);
    describe.skip(name, fn);
    return;
  }
  describe(name, fn);
}
