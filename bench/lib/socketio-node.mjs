/**
 * One socket.io server with `@socket.io/redis-adapter` on node-redis clients, set up as the
 * adapter's README shows (bench/cluster.mjs starts two on one Redis). The work it does is
 * the one the rallypoint nodes do: a client emits `sig` naming another client's socket id,
 * and the server sends it to that one client, on whichever node it is:
 * `io.to(id).emit('msg', from, data)`.
 *
 *   node bench/lib/socketio-node.mjs REDIS_URL|none [TRANSPORTS]
 * `none`: no adapter (one node, bench/transports.mjs). TRANSPORTS: engine.io's, comma-separated
 * (default `websocket`; `polling,websocket` is engine.io's own default).
 * Prints "socket.io listening on PORT" once it accepts connections.
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const [url, transports = 'websocket'] = process.argv.slice(2);
if (!url) {
  console.error('usage: socketio-node.mjs REDIS_URL|none [TRANSPORTS]');
  process.exit(2);
}
let adapter;
if (url !== 'none') {
  const pubClient = createClient({ url });
  const subClient = pubClient.duplicate();
  for (const c of [pubClient, subClient]) c.on('error', (err) => console.error(`redis: ${err.message}`));
  await Promise.all([pubClient.connect(), subClient.connect()]);
  adapter = createAdapter(pubClient, subClient);
}

const http = createServer();
const io = new Server(http, { ...(adapter && { adapter }), transports: transports.split(','), serveClient: false });
io.on('connection', (socket) => {
  socket.on('sig', (to, data) => io.to(to).emit('msg', socket.id, data));
});
http.listen(0, '127.0.0.1', () => console.log(`socket.io listening on ${http.address().port}`));
process.on('SIGTERM', () => process.exit(0));
