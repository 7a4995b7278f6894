import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { cli, nextLine as firstLine, killCliChildren, runCli as run, START_LINE, start } from '../helpers/cli.js';
import { type NpmServer, startNpmServer } from '../helpers/npm-start.js';

const npmServers: NpmServer[] = [];

afterEach(async () => {
  killCliChildren();
  await Promise.all(npmServers.splice(0).map((s) => s.close()));
});

describe('CLI', () => {
  it('`npm start` prints its URL first and serves /healthz', async () => {
    // npm runs the server under sh: the helper owns the whole process group and ends it.
    const server = await startNpmServer();
    npmServers.push(server);
    const { url: httpUrl, wsUrl } = server;
    expect(wsUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/ws$/);
    const res = await fetch(`${httpUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', connections: 0 });
    const metrics = await (await fetch(`${httpUrl}/metrics`)).text();
    expect(metrics).toContain('rallypoint_connections 0');
  });

  it('exits 0 on SIGTERM after closing clients with 1001', async () => {
    const child = start(process.execPath, [cli, 'serve', '--port', '0', '--host', '127.0.0.1', '--turn-port', '0']);
    const [, , wsUrl] = START_LINE.exec(await firstLine(child)) as RegExpExecArray;
    const ws = new WebSocket(wsUrl as string, 'rallypoint.v1');
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'join', room: 'lobby' }));
    await once(ws, 'message');
    const closed = once(ws, 'close');
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await closed) as [number];
    expect(code).toBe(1001);
    const [exitCode] = (await exited) as [number | null];
    expect(exitCode).toBe(0);
  });

  it('takes options from environment variables, flags winning', async () => {
    const child = start(process.execPath, [cli, 'serve', '--path', '/signal'], { PORT: '0', HOST: '127.0.0.1', TURN_PORT: '0', RALLYPOINT_PATH: '/ignored' });
    const [, , wsUrl] = START_LINE.exec(await firstLine(child)) as RegExpExecArray;
    expect(wsUrl).toMatch(/\/signal$/);
  });

  it('--help lists commands and every option with its environment variable', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('serve');
    for (const env of ['PORT', 'HOST', 'RALLYPOINT_PATH', 'RALLYPOINT_ORIGINS', 'RALLYPOINT_SECRET', 'RALLYPOINT_MAX_CONNECTIONS']) expect(stdout).toContain(env);
  });

  it('refuses invalid options with a clear message and exit code 2', async () => {
    const bad = await run(['serve'], { PORT: 'eighty' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('PORT=eighty: must be a number');
    const short = await run(['serve', '--secret', 'short', '--port', '0']);
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('--secret=short: must be at least 16 characters');
    const unknown = await run(['serve', '--nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown option '--nope'/);
    const cmd = await run(['launch']);
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toContain('unknown command launch');
  });
});
