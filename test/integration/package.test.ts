import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; default: string } | string> };

/** Runs an ESM snippet with plain Node from the project root, as a user's script would. */
async function node(code: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], { cwd: root });
  return stdout.trim();
}

/** Static import specifiers of a compiled module and, recursively, of the relative ones. */
function importGraph(entry: string, seen = new Set<string>(), bare = new Set<string>()): Set<string> {
  if (seen.has(entry)) return bare;
  seen.add(entry);
  const src = readFileSync(entry, 'utf8');
  for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) {
    const spec = (m[1] ?? m[2]) as string;
    if (spec.startsWith('.')) importGraph(resolve(dirname(entry), spec), seen, bare);
    else bare.add(spec);
  }
  return bare;
}

describe('package', () => {
  it('exports rallypoint, rallypoint/server, rallypoint/turn and rallypoint/node with types', () => {
    for (const sub of ['.', './server', './turn', './node']) {
      const entry = pkg.exports[sub];
      expect(entry, sub).toBeTypeOf('object');
      const { types, default: js } = entry as { types: string; default: string };
      expect(existsSync(resolve(root, js)), js).toBe(true);
      expect(existsSync(resolve(root, types)), types).toBe(true);
    }
  });

  it('plain Node imports the package by name', async () => {
    const out = await node(`
      import { listenSignaling, signToken } from 'rallypoint/server';
      import { SignalingClient, SUBPROTOCOL } from 'rallypoint';
      import { createNodeSignalingClient } from 'rallypoint/node';
      await import('rallypoint/turn');
      const s = await listenSignaling({ port: 0, host: '127.0.0.1', logger: false });
      const c = createNodeSignalingClient({ url: s.wsUrl, room: 'pkg' });
      const w = await c.connect();
      c.close();
      await s.close();
      console.log([typeof signToken, typeof SignalingClient, SUBPROTOCOL, w.room].join(' '));
    `);
    expect(out).toBe('function function rallypoint.v1 pkg');
  });

  it('the browser entry imports no Node modules', () => {
    const bare = importGraph(resolve(root, (pkg.exports['.'] as { default: string }).default));
    expect([...bare].filter((s) => s.startsWith('node:') || s === 'ws' || s === 'pino' || s === 'prom-client')).toEqual([]);
    // Not even zod: the browser validates with the guards that equal the schemas.
    expect([...bare].sort()).toEqual([]);
  });
});
