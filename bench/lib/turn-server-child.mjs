/**
 * The embedded TURN server (`rallypoint/turn`, dist/turn) in a process of its own, forked by
 * bench/turn.mjs. argv[2]: the REST secret. argv[3]: 'allow' (default): loopback on the peer
 * allow list, as the tests do, so a local echo peer can stand in for the remote end;
 * 'public': no allow list, the default deny list minus 127.0.0.0/8, so the loopback peer is
 * judged like a public address (every deny range checked per relayed packet). IPC:
 *   -> { type: 'ready', port, pid }
 *   <- { cmd: 'usage' } -> { type: 'usage', cpuUs, wallMs, packetsToPeer, packetsToClient, refusals }
 *   <- { cmd: 'exit' }  (closes the server and exits, so a --cpu-prof profile is written)
 */
// RALLYPOINT_TURN_DIST: another build's dist/turn/index.js (absolute path), to compare two
// versions of turn/ under the same load (A/B of the hot path changes).
const { DEFAULT_DENIED_PEERS, restCredentialLookup, TurnServer } = await import(process.env.RALLYPOINT_TURN_DIST ?? '../../dist/turn/index.js');

if (!process.send) {
  console.error('turn-server-child must be forked with an IPC channel');
  process.exit(2);
}
const server = new TurnServer({
  host: '127.0.0.1',
  port: 0,
  credentials: restCredentialLookup({ secret: process.argv[2] }),
  peers: process.argv[3] === 'public' ? { deny: DEFAULT_DENIED_PEERS.filter((c) => c !== '127.0.0.0/8') } : { allow: ['127.0.0.0/8'] },
});
const exit = () => server.close().finally(() => process.exit(0));
process.on('disconnect', exit);
const { port } = await server.listen();
// The relay counters the server keeps for its metrics (TurnCounters, turn/metrics.ts); a
// private field in TypeScript, read here from plain JavaScript.
const counters = server.counters;
process.on('message', (msg) => {
  if (msg?.cmd === 'usage') {
    const cpu = process.cpuUsage();
    process.send({
      type: 'usage',
      cpuUs: cpu.user + cpu.system,
      wallMs: performance.now(),
      packetsToPeer: counters?.packetsToPeer ?? NaN,
      packetsToClient: counters?.packetsToClient ?? NaN,
      refusals: { ...(counters?.refusals ?? {}) },
    });
  } else if (msg?.cmd === 'exit') {
    exit();
  }
});
process.send({ type: 'ready', port, pid: process.pid });
