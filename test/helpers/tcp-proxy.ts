import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket, connect as tcpConnect } from 'node:net';

export interface FreezableProxy {
  port: number;
  /** TCP flows opened through the proxy so far. */
  readonly flows: number;
  /** Open flows stop forwarding, both ways, and close nothing; later flows forward normally. */
  freeze(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 to `target` whose open flows can be frozen: a frozen flow forwards
 * nothing in either direction and sends no FIN or RST, which is what a vanished host (or a
 * middlebox that dropped the flow) looks like from both ends.
 */
export async function startFreezableProxy(target: number): Promise<FreezableProxy> {
  const flows: { frozen: boolean; sockets: Socket[] }[] = [];
  const server = createServer((down) => {
    const up = tcpConnect(target, '127.0.0.1');
    const flow = { frozen: false, sockets: [down, up] };
    flows.push(flow);
    down.on('data', (b) => void (flow.frozen || up.write(b)));
    up.on('data', (b) => void (flow.frozen || down.write(b)));
    down.on('end', () => void (flow.frozen || up.end()));
    up.on('end', () => void (flow.frozen || down.end()));
    for (const s of flow.sockets) s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    get flows() {
      return flows.length;
    },
    freeze() {
      for (const f of flows) f.frozen = true;
    },
    async close() {
      for (const f of flows) for (const s of f.sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
