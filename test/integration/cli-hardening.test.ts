import { afterEach, describe, expect, it } from 'vitest';
import { killCliChildren, nextLine, runCli, START_LINE, startCli } from '../helpers/cli.js';
import { rawUpgrade } from '../helpers/http.js';
import { cleanup } from '../helpers/resources.js';
import { TestClient } from '../helpers/ws-client.js';

afterEach(async () => {
  await cleanup();
  killCliChildren();
});

describe('cli: hardening options', () => {
  it('--help lists the new options with their environment variables', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const [flag, env] of [
      ['--allowed-hosts', 'RALLYPOINT_ALLOWED_HOSTS'],
      ['--trust-proxy', 'RALLYPOINT_TRUST_PROXY'],
      ['--token-audience', 'RALLYPOINT_TOKEN_AUDIENCE'],
      ['--token-issuer', 'RALLYPOINT_TOKEN_ISSUER'],
      ['--metrics-token', 'RALLYPOINT_METRICS_TOKEN'],
      ['--metrics-port', 'RALLYPOINT_METRICS_PORT'],
      ['--metrics-host', 'RALLYPOINT_METRICS_HOST'],
      ['--ipv6-prefix-length', 'RALLYPOINT_IPV6_PREFIX_LENGTH'],
      ['--join-timeout-ms', 'RALLYPOINT_JOIN_TIMEOUT_MS'],
      ['--max-buffered-bytes', 'RALLYPOINT_MAX_BUFFERED_BYTES'],
    ]) {
      expect(stdout).toContain(flag);
      expect(stdout).toContain(env);
    }
  });

  it('--trust-proxy takes a hop count or CIDRs, and alone still means one hop', async () => {
    for (const args of [['--trust-proxy'], ['--trust-proxy', '2'], ['--trust-proxy', '127.0.0.1,10.0.0.0/8'], ['--trust-proxy=true']]) {
      const child = startCli(['serve', '--port', '0', '--host', '127.0.0.1', '--turn', 'off', '--max-connections-per-ip', '1', ...args]);
      const [, , wsUrl] = START_LINE.exec(await nextLine(child)) as RegExpExecArray;
      // The header is read: two different client addresses each get their one slot. (With
      // hop count 2 the second entry from the right is the client.)
      const xff = args.includes('2') ? (a: string) => `${a}, 10.0.0.9` : (a: string) => a;
      const first = await TestClient.connect(wsUrl!, { headers: { 'X-Forwarded-For': xff('203.0.113.1') } });
      expect((await rawUpgrade(wsUrl!, { 'X-Forwarded-For': xff('203.0.113.2') })).status, args.join(' ')).toBe(101);
      expect((await rawUpgrade(wsUrl!, { 'X-Forwarded-For': xff('203.0.113.1') })).status, args.join(' ')).toBe(429);
      await first.destroy();
      child.kill('SIGKILL');
    }
  });

  it('refuses a bad --trust-proxy, and --token-audience without --secret, with exit code 2', async () => {
    const bad = await runCli(['serve', '--port', '0', '--turn', 'off', '--trust-proxy', '10.0.0.0/99']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--trust-proxy');
    const noSecret = await runCli(['serve', '--port', '0', '--turn', 'off', '--token-audience', 'game']);
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toContain('tokenAudience');
  });
});
