/**
 * Interop with a third-party TURN client: coturn's turnutils_uclient (Debian coturn) runs two
 * client-to-client sessions through the embedded server with REST credentials (-W secret)
 * and must get every message back. Outside CI it is skipped, with a printed reason, where
 * coturn is not installed; under CI=true a missing coturn fails the run (.ci/run installs it).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { restCredentialLookup, TurnServer } from '../../turn/index.js';
import { cleanup, defer } from '../helpers/resources.js';

afterEach(cleanup);

const UCLIENT = '/usr/bin/turnutils_uclient';
const SECRET = 'uclient-interop-secret-123';

const missing = !existsSync(UCLIENT);
if (missing && process.env.CI !== 'true') console.warn(`skipping turnutils_uclient interop: ${UCLIENT} not found (apt-get install coturn)`);

describe.skipIf(missing && process.env.CI !== 'true')('turnutils_uclient through the embedded TURN server', () => {
  it('relays every message of two client-to-client sessions (EVEN-PORT, ChannelBind, ChannelData)', async () => {
    const server = new TurnServer({
      host: '127.0.0.1',
      port: 0,
      credentials: restCredentialLookup({ secret: SECRET }),
      peers: { allow: ['127.0.0.0/8'] },
    });
    defer(() => server.close());
    const { port } = await server.listen();
    const child = spawn(UCLIENT, ['-y', '-c', '-n', '20', '-m', '2', '-z', '5', '-W', SECRET, '-u', 'uclient', '-p', String(port), '127.0.0.1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    defer(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(out).toMatch(/tot_send_msgs=40, tot_recv_msgs=40/);
    expect(out).toMatch(/Total lost packets 0 /);
    expect(code).toBe(0);
  });
});
