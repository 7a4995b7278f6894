/**
 * TURN credentials came with every join: one WebSocket minted 128 usernames in 1.6 s by
 * join/leave, each good for its own allocations. One connection now gets one credential:
 * rejoins on it reuse the ICE servers of its first join.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { turnIceServers } from '../../turn/ice-servers.js';
import { cleanup } from '../helpers/resources.js';
import { startServer } from '../helpers/server.js';

afterEach(cleanup);

const usernameOf = (servers: { username?: string }[]): string | undefined => servers.find((s) => s.username !== undefined)?.username;

describe('adversarial: minting TURN credentials by join/leave', () => {
  it('hands one connection one credential, however often it rejoins', async () => {
    let minted = 0;
    const mint = turnIceServers({ secret: 'turn-credentials-secret-0123456789', port: 3478 });
    const srv = await startServer({
      iceServers: (ctx) => {
        minted++;
        return mint(ctx);
      },
    });
    const c = await srv.connect();
    const usernames = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) {
      const welcome = await c.join(`room-${i % 3}`);
      usernames.add(usernameOf(welcome.iceServers));
      c.send({ type: 'leave' });
    }
    expect(minted).toBe(1);
    expect(usernames.size).toBe(1);
    expect([...usernames][0]).toMatch(/^\d+:[A-Za-z0-9_-]+$/);

    // Another connection is another credential.
    const other = await srv.connect();
    expect(usernameOf((await other.join('room-0')).iceServers)).not.toBe([...usernames][0]);
    expect(minted).toBe(2);
  });
});
