/**
 * A rallypoint Node peer (built `rallypoint/node`, werift) for bench/loss.mjs, run in a
 * network namespace:  node loss-peer.mjs '<options JSON>'
 *   options: {url, room, role: 'sender'|'receiver', rtcConfig?, fallback?, dist?}
 * JSON lines: commands on stdin ({"cmd": ...}), events on stdout ({"event": ...}). Exits
 * when stdin ends, so it never outlives the benchmark.
 *
 * The sender stamps each message with CLOCK_MONOTONIC (process.hrtime), which every process
 * on the host shares whatever its network namespace, so the receiver's arrival time minus
 * that stamp is a true one-way latency.
 */
import { createInterface } from 'node:readline';

const options = JSON.parse(process.argv[2] ?? '{}');
// options.dist: the built dist/peer/node.js to use (bench/loss.mjs passes its snapshot).
const { joinRoom } = await import(new URL(options.dist ?? '../../dist/peer/node.js', import.meta.url).href);
const out = (event, fields = {}) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
const now = () => process.hrtime.bigint();

const room = await joinRoom({
  url: options.url,
  room: options.room,
  meta: { role: options.role },
  ...(options.rtcConfig ? { rtcConfig: options.rtcConfig } : {}),
  ...(options.fallback !== undefined ? { fallback: options.fallback } : {}),
  reconnect: false,
});
room.on('error', (err) => console.error(`[${options.role}] room error: ${err?.code ?? ''} ${err?.message ?? err}`));

let peer = null;
const pathChanges = [];
room.on('peer-connected', (p) => {
  peer = p;
  p.on('path-change', (path) => {
    pathChanges.push({ path, t: Number(now()) / 1e6 });
    out('path', { path });
  });
  out('connected', { peer: p.id, path: p.path });
});
out('joined', { id: room.id });

// Receiver: latency (ms) and sequence number of each `unreliable` message, in arrival order.
let latencies = [];
let seqs = [];
let sentAt = [];
room.on('message', ({ channel, data }) => {
  const t = now();
  if (channel !== 'unreliable') return;
  const [seqText, sentText] = String(data).split('|');
  const sent = BigInt(sentText);
  latencies.push(Number(t - sent) / 1e6);
  seqs.push(Number(seqText));
  sentAt.push(Number(sent) / 1e6);
});

function payload(seq, size) {
  return `${seq}|${now()}|`.padEnd(size, '.');
}

const commands = {
  clock: () => out('clock', { t: Number(now()) / 1e6 }),
  async status() {
    const s = peer ? await peer.stats() : null;
    out('status', {
      path: s?.path ?? null,
      selectedPair: s?.selectedPair ?? null,
      messagesDropped: s?.messagesDropped ?? 0,
      state: peer?.state ?? null,
      generation: peer?.generation ?? null,
      pathChanges,
    });
  },
  /** `count` messages of `size` bytes on `unreliable`, paced at `hz` on an absolute schedule. */
  async stream({ count, hz, size, first = 0 }) {
    const period = 1000 / hz;
    const before = (await peer.stats()).messagesDropped;
    const start = performance.now();
    let late = 0;
    for (let i = 0; i < count; i++) {
      const wait = start + i * period - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      else if (wait < -period) late++;
      await peer.send('unreliable', payload(first + i, size));
    }
    const droppedBySender = (await peer.stats()).messagesDropped - before;
    out('sent', { sent: count, droppedBySender, late, elapsedMs: Math.round(performance.now() - start) });
  },
  report() {
    out('report', { latencies, seqs, sentAt });
    latencies = [];
    seqs = [];
    sentAt = [];
  },
  async leave() {
    await room.leave();
    out('left');
    process.exit(0);
  },
};

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line);
  const handler = commands[cmd.cmd];
  if (!handler) return out('error', { message: `unknown command ${cmd.cmd}` });
  Promise.resolve()
    .then(() => handler(cmd))
    .catch((err) => out('error', { message: String(err?.stack ?? err) }));
});
rl.on('close', () => process.exit(0));
