import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../../dist/signaling/cli/main.js', import.meta.url));
let child: ChildProcessWithoutNullStreams | null = null;

afterEach(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = null;
});

describe('CLI with nobody reading its output', () => {
  it('still stops on SIGTERM when stdout and stderr are broken pipes', async () => {
    child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--host', '127.0.0.1'], { stdio: 'pipe' });
    const rl = createInterface({ input: child.stdout });
    const [line] = (await once(rl, 'line')) as [string];
    expect(line).toMatch(/^rallypoint listening on /);
    rl.close();
    // The reader goes away (a dead parent, `rallypoint serve | head -1`): every write now fails with EPIPE.
    child.stdout.destroy();
    child.stderr.destroy();
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  });
});
