/**
 * Tokens: a `room` claim that is not a string used to be read as "no room claim", i.e. any
 * room; it is refused now. Audience and issuer can be required.
 */
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { UPGRADE_REFUSALS } from '../../signaling/protocol/index.js';
import { InvalidOptionsError, listenSignaling, signToken, verifyToken } from '../../signaling/server/index.js';
import { rawUpgrade } from '../helpers/http.js';
import { cleanup } from '../helpers/resources.js';
import { startServer } from '../helpers/server.js';

afterEach(cleanup);

const SECRET = 'tokens-test-secret-0123456789abcdef';

function forge(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + 60)
    .sign(new TextEncoder().encode(SECRET));
}

const bearer = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` });

describe('adversarial: token claims', () => {
  it('refuses a token whose room claim is not a string (it must not mean any room)', async () => {
    const srv = await startServer({ secret: SECRET });
    for (const room of [['a', 'b'], { any: true }, 7, null, true]) {
      const token = await forge({ room });
      expect(await verifyToken(SECRET, token)).toBeNull();
      expect((await rawUpgrade(srv.wsUrl, bearer(token))).status).toBe(UPGRADE_REFUSALS.unauthorized);
    }
    expect(await verifyToken(SECRET, await forge({ sub: 42 }))).toBeNull();
    // A string room claim still works, and still restricts.
    const ok = await srv.connect({ headers: bearer(await forge({ room: 'a' })) });
    expect((await ok.join('a')).room).toBe('a');
  });

  it('checks aud and iss when configured', async () => {
    const srv = await startServer({ secret: SECRET, tokenAudience: 'rallypoint', tokenIssuer: ['https://auth.example'] });
    const good = await signToken(SECRET, { ttlSeconds: 60, audience: 'rallypoint', issuer: 'https://auth.example' });
    expect((await rawUpgrade(srv.wsUrl, bearer(good))).status).toBe(101);
    for (const claims of [{}, { audience: 'other', issuer: 'https://auth.example' }, { audience: 'rallypoint' }, { audience: 'rallypoint', issuer: 'https://evil.example' }]) {
      const token = await signToken(SECRET, { ttlSeconds: 60, ...claims });
      expect((await rawUpgrade(srv.wsUrl, bearer(token))).status).toBe(UPGRADE_REFUSALS.unauthorized);
    }
  });

  it('refuses audience/issuer checks without a secret, and empty values, at construction', async () => {
    await expect(listenSignaling({ port: 0, logger: false, tokenAudience: 'x' })).rejects.toThrow(InvalidOptionsError);
    await expect(listenSignaling({ port: 0, logger: false, secret: SECRET, tokenIssuer: '' })).rejects.toThrow(InvalidOptionsError);
  });
});
