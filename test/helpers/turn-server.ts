import type { TransportAddress } from '../../turn/codec.js';
import { TurnServer, type TurnServerOptions } from '../../turn/index.js';
import { defer } from './resources.js';

/**
 * An embedded TURN server on 127.0.0.1 (free port) with static users and loopback on the
 * peer allow list; closed by the test's `cleanup()`.
 */
export async function startTurnServer(users: Record<string, string>, extra: Partial<TurnServerOptions> = {}): Promise<{ server: TurnServer; address: TransportAddress }> {
  const server = new TurnServer({
    host: '127.0.0.1',
    port: 0,
    credentials: (u) => users[u],
    peers: { allow: ['127.0.0.0/8'] },
    ...extra,
  });
  defer(() => server.close());
  const address = await server.listen();
  return { server, address };
}
