/**
 * A TCP middlebox that breaks WebSockets the way some corporate boxes do: it forwards both
 * ways until the upstream answers an upgrade with `HTTP/1.1 101`, forwards that response's
 * header block, and from then on forwards nothing on that flow (no FIN, no RST). Plain HTTP
 * requests and responses pass untouched.
 */
import { once } from 'node:events';
import { connect, createServer } from 'node:net';

/** Starts the middlebox on 127.0.0.1 (a free port) in front of 127.0.0.1:`target`. */
export async function startMiddlebox(target) {
  const sockets = new Set();
  let silenced = 0;
  const server = createServer((down) => {
    const up = connect(target, '127.0.0.1');
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    let silent = false;
    down.on('data', (b) => void (silent || up.write(b)));
    up.on('data', (b) => {
      if (silent) return;
      // A 101 is the first response on its connection and its headers arrive in one read here.
      if (b.toString('latin1', 0, 12) === 'HTTP/1.1 101') {
        silent = true;
        silenced++;
        const end = b.indexOf('\r\n\r\n');
        down.write(end === -1 ? b : b.subarray(0, end + 4));
        return;
      }
      down.write(b);
    });
    down.on('end', () => void (silent || up.end()));
    up.on('end', () => void (silent || down.end()));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: server.address().port,
    /** Flows that went silent after a 101 so far. */
    get silenced() {
      return silenced;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
