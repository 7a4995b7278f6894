/**
 * The embedded TURN server as the CLI runs it: started by `serve` next to signaling, peers
 * getting per-peer REST credentials in welcome.iceServers that the TURN server accepts, the
 * TURN URL naming the host the client used, TURN metrics in /metrics, `--turn off`,
 * `--turn-urls` for coturn, and `rallypoint turn` alone.
 */

import dgram from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { StunClass, StunMethod } from '../../turn/codec.js';
import { mintTurnCredentials, verifyTurnCredentials } from '../../turn/index.js';
import { killCliChildren, nextLine, runCli, START_LINE, startCli, TURN_LINE } from '../helpers/cli.js';
import { cleanup, defer } from '../helpers/resources.js';
import { errorCode, TurnTestClient } from '../helpers/turn-client.js';
import { TestClient } from '../helpers/ws-client.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
});

const SECRET = 'cli-turn-test-secret-0123456789';

interface Started {
  httpUrl: string;
  wsUrl: string;
  turnPort: number;
  relay: string;
}

/** `rallypoint serve` on 127.0.0.1 with TURN on a free port; resolves after both start lines. */
async function serve(args: string[] = [], env: Record<string, string> = {}): Promise<Started> {
  const child = startCli(['serve', '--port', '0', '--host', '127.0.0.1', '--turn-port', '0', '--log-level', 'warn', ...args], env);
  const first = START_LINE.exec(await nextLine(child));
  const turn = TURN_LINE.exec(await nextLine(child));
  if (!first || !turn) throw new Error('unexpected start lines');
  return { httpUrl: first[1]!, wsUrl: first[2]!, turnPort: Number(turn[2]), relay: turn[3]! };
}

async function welcome(wsUrl: string, headers: Record<string, string> = {}): Promise<Awaited<ReturnType<TestClient['join']>>> {
  const c = await TestClient.connect(wsUrl, { headers });
  return c.join('lobby');
}

describe('rallypoint serve with the embedded TURN server', () => {
  it('hands each peer STUN and TURN URLs with REST credentials the TURN server accepts', async () => {
    const s = await serve();
    expect(s.relay).toBe('127.0.0.1');
    const w = await welcome(s.wsUrl);
    const [stun, turn] = w.iceServers;
    expect(w.iceServers).toHaveLength(2);
    expect(stun).toEqual({ urls: `stun:127.0.0.1:${s.turnPort}` });
    expect(turn?.urls).toBe(`turn:127.0.0.1:${s.turnPort}?transport=udp`);
    // "<unix expiry>:<peer id>", valid for the default 12 h.
    const [expiry, peer] = turn!.username!.split(':');
    expect(peer).toBe(w.id);
    expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(43_200 - 60);
    expect(Number(expiry) - Date.now() / 1000).toBeLessThanOrEqual(43_200);

    const server = { address: '127.0.0.1', port: s.turnPort };
    const good = await TurnTestClient.open(server, turn!.username!, turn!.credential!);
    const { relayed } = await good.allocate();
    expect(relayed.address).toBe('127.0.0.1');
    // STUN Binding needs no credentials (what peers use for server-reflexive candidates).
    const binding = await good.request(StunMethod.binding, [], { auth: false });
    expect(binding.msg.cls).toBe(StunClass.success);

    // The generated secret is not guessable: a credential minted with any other is refused.
    const forged = mintTurnCredentials(w.id, { secret: 'not-the-server-secret-0000' });
    const bad = await TurnTestClient.open(server, forged.username, forged.password);
    const res = await bad.request(StunMethod.allocate, [{ type: 0x0019, value: Buffer.from([17, 0, 0, 0]) }]);
    expect(errorCode(res.msg)).toBe(401);

    const metrics = await (await fetch(`${s.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^rallypoint_turn_allocations 1$/m);
    expect(metrics).toContain('rallypoint_connections 1');
  });

  it('names the host the client reached signaling by, or the configured public host', async () => {
    const s = await serve();
    const port = new URL(s.httpUrl).port;
    const byName = await welcome(s.wsUrl, { host: `localhost:${port}` });
    expect(byName.iceServers[0]).toEqual({ urls: `stun:localhost:${s.turnPort}` });
    const v6 = await welcome(s.wsUrl, { host: `[::1]:${port}` });
    expect(v6.iceServers[1]?.urls).toBe(`turn:[::1]:${s.turnPort}?transport=udp`);
    // Nothing odd from the header is echoed into URLs: the address the request came in on.
    const odd = await welcome(s.wsUrl, { host: 'evil.example/?x=1' });
    expect(odd.iceServers[0]).toEqual({ urls: `stun:127.0.0.1:${s.turnPort}` });

    const pub = await serve(['--turn-public-host', 'turn.example.com']);
    const w = await welcome(pub.wsUrl);
    expect(w.iceServers.map((i) => i.urls)).toEqual([`stun:turn.example.com:${pub.turnPort}`, `turn:turn.example.com:${pub.turnPort}?transport=udp`]);
  });

  it('--turn-host ::1: the URLs name [::1], where the TURN server listens, and it answers there', async () => {
    const s = await serve(['--turn-host', '::1']);
    expect(s.relay).toBe('::1');
    const w = await welcome(s.wsUrl);
    expect(w.iceServers.map((i) => i.urls)).toEqual([`stun:[::1]:${s.turnPort}`, `turn:[::1]:${s.turnPort}?transport=udp`]);
    const turn = w.iceServers[1]!;
    const client = await TurnTestClient.open({ address: '::1', port: s.turnPort }, turn.username!, turn.credential!);
    const { relayed } = await client.allocate();
    expect(relayed.address).toBe('0:0:0:0:0:0:0:1');
  });

  it('uses TURN_SECRET and --turn-ttl when given, so coturn can share them', async () => {
    const s = await serve(['--turn-ttl', '600'], { TURN_SECRET: SECRET });
    const turn = (await welcome(s.wsUrl)).iceServers[1]!;
    expect(verifyTurnCredentials(turn.username!, turn.credential!, { secret: SECRET })).toBe(true);
    expect(Number(turn.username!.split(':')[0]) - Date.now() / 1000).toBeLessThanOrEqual(600);
    // A credential minted elsewhere with the shared secret works on the embedded server.
    const minted = mintTurnCredentials('other-service', { secret: SECRET, ttl: 60 });
    const c = await TurnTestClient.open({ address: '127.0.0.1', port: s.turnPort }, minted.username, minted.password);
    await c.allocate();
  });

  it('--turn off: no TURN server, no ICE servers, no TURN metrics', async () => {
    const child = startCli(['serve', '--port', '0', '--host', '127.0.0.1', '--turn', 'off', '--log-level', 'warn']);
    const [, httpUrl, wsUrl] = START_LINE.exec(await nextLine(child))!;
    expect((await welcome(wsUrl!)).iceServers).toEqual([]);
    expect(await (await fetch(`${httpUrl}/metrics`)).text()).not.toContain('rallypoint_turn_');
  });

  it('--turn-urls hands out an external TURN (coturn) with credentials from its secret, and needs that secret', async () => {
    const urls = 'stun:turn.example.com:3478,turn:turn.example.com:3478?transport=udp';
    const refused = await runCli(['serve', '--port', '0', '--turn-urls', urls]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('needs its secret');

    const child = startCli(['serve', '--port', '0', '--host', '127.0.0.1', '--turn-urls', urls, '--log-level', 'warn'], { TURN_SECRET: SECRET });
    const [, , wsUrl] = START_LINE.exec(await nextLine(child))!;
    const w = await welcome(wsUrl!);
    expect(w.iceServers[0]).toEqual({ urls: ['stun:turn.example.com:3478'] });
    expect(w.iceServers[1]?.urls).toEqual(['turn:turn.example.com:3478?transport=udp']);
    expect(verifyTurnCredentials(w.iceServers[1]!.username!, w.iceServers[1]!.credential!, { secret: SECRET })).toBe(true);
    expect(w.iceServers[1]!.username).toMatch(new RegExp(`^\\d+:${w.id}$`));
  });

  it('fails to start, with a clear message and exit 1, when the TURN port is taken', async () => {
    const taken = dgram.createSocket('udp4');
    defer(() => new Promise<void>((r) => taken.close(() => r())));
    await new Promise<void>((r) => taken.bind(0, '127.0.0.1', () => r()));
    const { code, stdout, stderr } = await runCli(['serve', '--port', '0', '--host', '127.0.0.1', '--turn-port', String(taken.address().port)]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/rallypoint: TURN: cannot listen on 127\.0\.0\.1:\d+/);
  });

  it('refuses bad TURN options with exit 2', async () => {
    const bad = await runCli(['serve', '--turn', 'maybe', '--turn-allow', '10.0.0.0/99', '--turn-secret', 'short']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--turn=maybe');
    expect(bad.stderr).toContain('--turn-allow=10.0.0.0/99: must be a CIDR');
    expect(bad.stderr).toContain('--turn-secret=short: must be at least 16 characters');
  });
});

describe('rallypoint turn', () => {
  it('needs TURN_SECRET', async () => {
    const { code, stderr } = await runCli(['turn', '--turn-port', '0'], { TURN_SECRET: '' });
    expect(code).toBe(2);
    expect(stderr).toContain('TURN_SECRET');
  });

  it('runs the TURN server alone for credentials minted with the shared secret; exits 0 on SIGTERM', async () => {
    const child = startCli(['turn', '--turn-host', '127.0.0.1', '--turn-port', '0', '--turn-allow', '127.0.0.0/8', '--log-level', 'warn'], { TURN_SECRET: SECRET });
    const m = TURN_LINE.exec(await nextLine(child))!;
    expect(m[1]).toBe('127.0.0.1');
    const creds = mintTurnCredentials('peer-a', { secret: SECRET, ttl: 60 });
    const c = await TurnTestClient.open({ address: '127.0.0.1', port: Number(m[2]) }, creds.username, creds.password);
    const { relayed } = await c.allocate();
    // --turn-allow lets it relay to loopback, which the default deny list refuses.
    const perm = await c.createPermission({ address: '127.0.0.1', port: 9 });
    expect(perm.msg.cls).toBe(StunClass.success);
    expect(relayed.port).toBeGreaterThan(0);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    expect((await exited)[0]).toBe(0);
  });
});

describe('startEmbeddedTurn', () => {
  it('gives the TURN per-IP limits the signaling --ipv6-prefix-length (one notion of one source)', async () => {
    const { startEmbeddedTurn } = await import('../../signaling/cli/turn.js');
    const turn = await startEmbeddedTurn({ secret: SECRET, listen: '127.0.0.1', port: 0, realm: 'test', ipv6PrefixLength: 96 });
    defer(() => turn.server.close());
    expect(turn.server.quotas.ipv6PrefixLength).toBe(96);
    const plain = await startEmbeddedTurn({ secret: SECRET, listen: '127.0.0.1', port: 0, realm: 'test' });
    defer(() => plain.server.close());
    expect(plain.server.quotas.ipv6PrefixLength).toBe(64);
  });
});
