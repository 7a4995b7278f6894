/**
 * node-turn is reached through one file: turn/node-turn.ts loads it and corrects it on its
 * own objects. A second place that loads or patches node-turn would split its corrections
 * again (per-instance handlers, a process-wide patch, a Proxy, a temporary hook: four styles
 * in four places before they were brought here).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const TURN = fileURLToPath(new URL('../../turn/', import.meta.url));
const sources = readdirSync(TURN)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => ({ file: f, text: readFileSync(join(TURN, f), 'utf8') }));

describe('the node-turn seam', () => {
  it('only turn/node-turn.ts loads node-turn', () => {
    const loaders = sources.filter(({ text }) => /(?:require\(|from |import\()\s*['"]node-turn/.test(text)).map(({ file }) => file);
    expect(loaders).toEqual(['node-turn.ts']);
  });

  it('nothing in turn/ patches a prototype or wraps an object in a Proxy', () => {
    const patching = sources.filter(({ text }) => /\.prototype\.\w+\s*=|new Proxy\(/.test(text)).map(({ file }) => file);
    expect(patching).toEqual([]);
  });
});
