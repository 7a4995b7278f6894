// Two headless Node peers join a room through a signaling server this script starts,
// open WebRTC data channels (werift) and exchange 1,000 messages on each preset channel.
// Run: npm run example:node   (after npm ci, which builds dist/)

import { joinRoom } from 'rallypoint/node';
import { listenSignaling } from 'rallypoint/server';

const COUNT = Number(process.env.COUNT ?? 1000);
const server = await listenSignaling({ port: 0, host: '127.0.0.1', logger: false });
const started = performance.now();
const alice = await joinRoom({ url: server.wsUrl, room: 'example', meta: { name: 'alice' } });
const bob = await joinRoom({ url: server.wsUrl, room: 'example', meta: { name: 'bob' } });
for (const room of [alice, bob]) room.on('error', (err) => console.error('error:', err.code, err.message));

// Both sides report the other as connected once every channel is open.
const [[bobSeenByAlice]] = await Promise.all([alice.next('peer-connected'), bob.next('peer-connected')]);
console.log(`connected in ${(performance.now() - started).toFixed(0)} ms, path ${bobSeenByAlice.path ?? 'unknown'}`);

const received = { reliable: [], unreliable: [] };
const allReliable = new Promise((resolve) =>
  alice.on('message', ({ channel, data }) => {
    received[channel].push(Number(data));
    if (channel === 'reliable' && received.reliable.length === COUNT) resolve();
  }),
);

const toAlice = bob.peers.get(alice.id);
for (let i = 0; i < COUNT; i++) {
  // Reliable sends wait (await) while the channel is congested; unreliable ones drop instead,
  // so pace them a little, as a game loop would.
  await toAlice.send('reliable', String(i));
  await toAlice.send('unreliable', String(i));
  if (i % 5 === 4) await new Promise((r) => setTimeout(r, 1));
}
await allReliable;
// The last unreliable messages may still be in flight: wait for the reliable echo of a marker.
await toAlice.send('reliable', 'end');
await new Promise((resolve) => alice.on('message', ({ channel, data }) => channel === 'reliable' && data === 'end' && resolve()));

const inOrder = received.reliable.slice(0, COUNT).every((v, i) => v === i);
const stats = await toAlice.stats();
console.log(`reliable: ${received.reliable.length - 1}/${COUNT} received, in order: ${inOrder}`);
console.log(`unreliable: ${received.unreliable.length}/${COUNT} received`);
console.log(`rtt ${stats.rttMs?.toFixed(2) ?? '?'} ms, selected pair ${stats.selectedPair?.local.type}/${stats.selectedPair?.remote.type}`);

await Promise.all([alice.leave(), bob.leave()]);
await server.close();
process.exitCode = inOrder && received.reliable.length - 1 === COUNT ? 0 : 1;
