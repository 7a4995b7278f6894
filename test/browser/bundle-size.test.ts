import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLibrary } from '../../web/build.mjs';

/**
 * The budget of the peer library and signaling client together, min+gzip (gzip -9). 13 KiB:
 * the hardening of the signaling client and the peer library took the bundle from 12,284 to
 * about 12,870 bytes: the client's own liveness (welcome timeout, ping/pong), the reliable
 * receiver's framing bounds (held fragments, reassembly cap with its 16 MiB ceiling), the
 * two-way data channel liveness and the new close codes; 56 were saved where joinRoom
 * stopped copying the client's options one by one. 14 KiB: the ladder of transports
 * (Server-Sent Events and long-polling shaped like a WebSocket for proxies that break
 * WebSocket, the probe and fallback logic, the background move back up) added about 1,440
 * bytes. Splitting the peer library and the client into files by job cost about 450 bytes
 * (more classes, fields and getters across the seams); web/build.mjs won them back with a
 * terser pass after esbuild and by shortening internal property names
 * (bundle-mangle.test.ts).
 */
const BUDGET_BYTES = 14 * 1024;

describe('browser bundle (dist/web/rallypoint.min.js)', () => {
  let dir = '';
  let code: Buffer;
  let inputs: Record<string, { bytesInOutput: number }> = {};
  let exports: string[] = [];
  let imports: { path: string }[] = [];

  beforeAll(async () => {
    // Built here by web/build.mjs itself, so the test does not depend on a prior build.
    dir = await mkdtemp(join(tmpdir(), 'rallypoint-bundle-'));
    const result = await buildLibrary(dir);
    const [out] = Object.entries(result.metafile.outputs).filter(([name]) => name.endsWith('rallypoint.min.js'));
    if (!out) throw new Error('esbuild produced no rallypoint.min.js');
    inputs = out[1].inputs;
    exports = out[1].exports;
    imports = out[1].imports;
    code = await readFile(join(dir, 'rallypoint.min.js'));
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  it(`is at most ${BUDGET_BYTES} bytes min+gzip`, () => {
    const gzipped = gzipSync(code, { level: 9 }).byteLength;
    // On failure, say where the bytes go (minified bytes per input, biggest first).
    const biggest = Object.entries(inputs)
      .sort((a, b) => b[1].bytesInOutput - a[1].bytesInOutput)
      .slice(0, 8)
      .map(([file, v]) => `${file}: ${v.bytesInOutput} B`)
      .join('\n  ');
    expect(gzipped, `${gzipped} B min+gzip (${code.byteLength} B minified); biggest inputs:\n  ${biggest}`).toBeLessThanOrEqual(BUDGET_BYTES);
  });

  it('is one ESM file with the public API and nothing for Node', () => {
    expect(exports).toEqual(expect.arrayContaining(['joinRoom', 'Room', 'RemotePeer', 'SignalingClient', 'CHANNEL_PRESETS', 'PeerError', 'SUBPROTOCOL']));
    expect(imports).toEqual([]); // self-contained
    expect(code.toString('utf8')).not.toMatch(/\brequire\(/);
    // The Node-only parts (werift, ws) must never reach the browser bundle.
    expect(Object.keys(inputs).filter((f) => /node_modules\/(werift|ws)\/|peer\/node\.ts|runtime\/werift/.test(f))).toEqual([]);
  });
});
