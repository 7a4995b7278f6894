/** TURN REST API credentials: minting, verification, and the server's 401s. */
import { afterEach, describe, expect, it } from 'vitest';
import { StunAttr, StunMethod } from '../../turn/codec.js';
import { mintTurnCredentials, restCredentialLookup, restPassword, TurnServer, verifyTurnCredentials } from '../../turn/index.js';
import { cleanup, defer } from '../helpers/resources.js';
import { errorCode, TurnTestClient } from '../helpers/turn-client.js';

afterEach(cleanup);

const SECRET = '0123456789abcdef-secret';

describe('TURN REST credentials', () => {
  it('matches the coturn use-auth-secret formula (openssl-computed vector)', () => {
    expect(restPassword(SECRET, '1700000000:peer-1')).toBe('uDjehLiGqVRt8jL0RVSXNqA4S5k=');
  });

  it('mints "<expiry>:<peer id>" and verifies it until it expires', () => {
    let now = 1_700_000_000_000;
    const opts = { secret: SECRET, ttl: 60, now: () => now };
    const c = mintTurnCredentials('peer-1', opts);
    expect(c.username).toBe('1700000060:peer-1');
    expect(c.expiresAt).toBe(1_700_000_060);
    expect(verifyTurnCredentials(c.username, c.password, opts)).toBe(true);
    expect(verifyTurnCredentials(c.username, `${c.password}x`, opts)).toBe(false);
    expect(verifyTurnCredentials('1700009999:peer-1', c.password, opts)).toBe(false);
    expect(verifyTurnCredentials(c.username, restPassword('another-secret-0123', c.username), opts)).toBe(false);
    now += 60_000;
    expect(verifyTurnCredentials(c.username, c.password, opts)).toBe(false);
    expect(restCredentialLookup(opts)('no-expiry')).toBeUndefined();
  });

  it('refuses short secrets and bad peer ids with stable codes', () => {
    expect(() => mintTurnCredentials('p', { secret: 'short' })).toThrow(expect.objectContaining({ code: 'insecure-config' }));
    expect(() => restCredentialLookup({ secret: 'short' })).toThrow(expect.objectContaining({ code: 'insecure-config' }));
    expect(() => mintTurnCredentials('a:b', { secret: SECRET })).toThrow(expect.objectContaining({ code: 'bad-credentials' }));
  });
});

describe('TurnServer with REST credentials', () => {
  let now = Date.now();
  const opts = { secret: SECRET, now: () => now };

  async function start(): Promise<{ address: { address: string; port: number } }> {
    now = Date.now();
    const server = new TurnServer({ host: '127.0.0.1', port: 0, credentials: restCredentialLookup(opts) });
    defer(() => server.close());
    return { address: await server.listen() };
  }

  it('allocates with fresh credentials, and refreshes until they expire (then 401)', async () => {
    const { address } = await start();
    const cred = mintTurnCredentials('peer-a', { ...opts, ttl: 120 });
    const c = await TurnTestClient.open(address, cred.username, cred.password);
    await c.allocate();
    expect((await c.refresh()).msg.cls).toBe(2);
    now += 121_000;
    expect(errorCode((await c.refresh()).msg)).toBe(401);
  });

  it('answers 401 to expired credentials', async () => {
    const { address } = await start();
    const cred = mintTurnCredentials('peer-b', { ...opts, ttl: -1 });
    const c = await TurnTestClient.open(address, cred.username, cred.password);
    await expect(c.allocate()).rejects.toThrow(/401/);
  });

  it('answers 401 to forged credentials: a moved expiry, another secret, another peer id', async () => {
    const { address } = await start();
    const cred = mintTurnCredentials('peer-c', { ...opts, ttl: 60 });
    const later = `${cred.expiresAt + 86_400}:peer-c`;
    const forgeries = [
      { username: later, password: cred.password },
      { username: cred.username, password: restPassword('some-other-secret-123', cred.username) },
      { username: `${cred.expiresAt}:peer-d`, password: cred.password },
    ];
    for (const f of forgeries) {
      const c = await TurnTestClient.open(address, f.username, f.password);
      const res = await c.request(StunMethod.allocate, [{ type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) }]);
      expect(errorCode(res.msg)).toBe(401);
    }
  });
});
