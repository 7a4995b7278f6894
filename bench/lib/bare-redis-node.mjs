/**
 * The least a node can do to pass a signal to a client on another node over Redis: a bare
 * `ws` relay (bench/lib/server-child.mjs's `bare`, no validation, no limits) whose peers'
 * ids name their node, and one node-redis SPUBLISH per signal to that node's channel. The
 * floor under a cross-node hop on this machine, for bench/cluster.mjs (`bare-redis`).
 *
 *   node bench/lib/bare-redis-node.mjs REDIS_URL NODE_ID
 * Prints "bare listening on PORT". Speaks just enough rallypoint.v1 for the bench's pair:
 * join -> welcome, peer-joined to everyone when anyone joins, signal -> signal.
 */
import { createServer } from 'node:http';
import { createClient } from 'redis';
import { WebSocketServer } from 'ws';

const [url, node] = process.argv.slice(2);
if (!url || !node) {
  console.error('usage: bare-redis-node.mjs REDIS_URL NODE_ID');
  process.exit(2);
}
const pub = createClient({ url });
const sub = pub.duplicate();
for (const c of [pub, sub]) c.on('error', (err) => console.error(`redis: ${err.message}`));
await Promise.all([pub.connect(), sub.connect()]);

const peers = new Map();
const JOINED = '{"type":"peer-joined"}';
// A frame for node N: "<to> <frame>" on channel bare:N.
await sub.sSubscribe(`bare:${node}`, (message) => {
  const space = message.indexOf(' ');
  peers.get(message.slice(0, space))?.send(message.slice(space + 1));
});
await sub.subscribe('bare:joins', () => {
  for (const ws of peers.values()) ws.send(JOINED);
});

const http = createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server: http, path: '/ws', perMessageDeflate: false, clientTracking: false });
let next = 0;
wss.on('connection', (ws) => {
  const id = `${node}.${(next++).toString(36)}`;
  peers.set(id, ws);
  ws.on('message', (data) => {
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (msg.type === 'signal') {
      const frame = JSON.stringify({ type: 'signal', from: id, data: msg.data });
      const local = peers.get(msg.to);
      if (local) local.send(frame);
      else void pub.sPublish(`bare:${msg.to.slice(0, msg.to.lastIndexOf('.'))}`, `${msg.to} ${frame}`);
    } else if (msg.type === 'join') {
      ws.send(JSON.stringify({ type: 'welcome', id, room: msg.room, peers: [] }));
      void pub.publish('bare:joins', id);
    }
  });
  ws.on('close', () => peers.delete(id));
  ws.on('error', () => {});
});
http.listen(0, '127.0.0.1', () => console.log(`bare listening on ${http.address().port}`));
process.on('SIGTERM', () => process.exit(0));
