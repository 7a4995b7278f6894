/**
 * Signaling and the embedded TURN server in one process, wired as the CLI wires them
 * (signaling/cli/main.ts: shared registry, REST secret, welcome ICE servers), for
 * bench/turn-attack.mjs. RALLYPOINT_DIST: another build's dist/ (absolute path), to measure two
 * builds under the same attack. argv[2]: the REST secret. IPC:
 *   -> { type: 'ready', healthz, turnPort, username }
 *   <- { cmd: 'exit' }
 */
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dist = process.env.RALLYPOINT_DIST ?? join(fileURLToPath(new URL('.', import.meta.url)), '../../dist');
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { listenSignaling } = await load('signaling/server/index.js');
const { startEmbeddedTurn } = await load('signaling/cli/turn.js');
const { turnIceServers, mintTurnCredentials } = await load('turn/index.js');
const { Registry } = await import('prom-client');

const secret = process.argv[2];
const registry = new Registry();
const turn = await startEmbeddedTurn({ secret, listen: '127.0.0.1', port: 0, realm: 'rallypoint', allow: [], registry });
const signaling = await listenSignaling({ port: 0, host: '127.0.0.1', registry, iceServers: turnIceServers({ secret, port: turn.port }), logger: false });
const exit = async () => {
  await Promise.allSettled([signaling.close({ timeoutMs: 1000 }), turn.server.close()]);
  process.exit(0);
};
process.on('disconnect', exit);
process.on('message', (m) => m?.cmd === 'exit' && exit());
process.send({ type: 'ready', healthz: `${signaling.url}/healthz`, turnPort: turn.port, username: mintTurnCredentials('victim', { secret }).username });
