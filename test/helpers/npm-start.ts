import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { START_LINE } from './cli.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface NpmServer {
  /** `http://127.0.0.1:port`: the demo and the bundle are served here. */
  url: string;
  /** The signaling WebSocket URL. */
  wsUrl: string;
  /** What the server wrote on stderr so far (its JSON log lines). */
  stderr(): string;
  /** SIGTERM, then waits until npm and the server have exited (SIGKILL after 10 s). */
  close(): Promise<void>;
}

/**
 * Runs the real `npm start` (PORT=0, HOST=127.0.0.1, TURN_PORT=0) in its own process group and waits for
 * its start line, `rallypoint listening on http://... (signaling ws://...)`.
 */
export async function startNpmServer(env: Record<string, string> = {}): Promise<NpmServer> {
  const child = spawn('npm', ['start', '--silent'], {
    cwd: root,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', TURN_PORT: '0', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so close() reaches the server under npm too
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'exit');
  // 'close' comes once every process holding the stdio pipes (npm, sh and the server) is gone.
  const closed = once(child, 'close');
  // If the test process ends without close() (a worker torn down), take the group with it.
  const onExit = (): void => signalGroup(child, 'SIGKILL');
  process.once('exit', onExit);
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      // npm does not wait for its script on SIGTERM: signal the whole group.
      signalGroup(child, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), 10_000);
      await closed;
      clearTimeout(timer);
      process.off('exit', onExit);
    })());
  try {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const early = exited.then(([code]) => {
      throw new Error(`npm start exited (${String(code)}) before its start line:\n${stderr}`);
    });
    const [line] = (await Promise.race([once(rl, 'line'), early])) as [string];
    rl.close();
    child.stdout?.resume();
    const m = START_LINE.exec(line);
    if (!m) throw new Error(`unexpected start line: ${line}`);
    return { url: m[1] as string, wsUrl: m[2] as string, stderr: () => stderr, close };
  } catch (err) {
    await close();
    throw err;
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is gone already.
  }
}
