import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { INTERNAL_PROPS, libraryOptions } from '../../web/build.mjs';
import { publicNames } from '../helpers/public-names.js';

/**
 * web/build.mjs lets esbuild shorten the property names in INTERNAL_PROPS everywhere in the
 * bundle. A name on that list that is also used for something else breaks the bundle in a
 * way only a browser would show: a DOM or ECMAScript member the bundle calls, an option or
 * interface member a user passes or reads, or a key on the wire. Each check below fails
 * when such a name is added to the list (tried: `close` for the platform, `probeMs` for the
 * public declarations, `relayBytesBurst` for the wire, an unused name for staleness).
 */
const root = fileURLToPath(new URL('../..', import.meta.url));

const identifiers = (text: string): Set<string> => new Set(text.match(/[A-Za-z_$][\w$]*/g) ?? []);

describe('names the browser bundle shortens (web/build.mjs INTERNAL_PROPS)', () => {
  let unminified = '';

  beforeAll(async () => {
    const result = await build({ ...libraryOptions('/unused'), minify: false, sourcemap: false, mangleProps: undefined });
    unminified = result.outputFiles.find((f) => f.path.endsWith('.js'))?.text ?? '';
  });

  it('are each used by the library (the list is not stale)', () => {
    const unused = INTERNAL_PROPS.filter((name) => !new RegExp(`[.#]${name}\\b|\\b${name}\\s*[(:]`).test(unminified));
    expect(unused).toEqual([]);
  });

  it('are no DOM or ECMAScript member (TypeScript lib declarations)', () => {
    // The TypeScript 7 compiler ships its lib files in a platform package.
    const tsDir = join(root, 'node_modules/@typescript');
    const libs = readdirSync(tsDir)
      .map((d) => join(tsDir, d, 'lib'))
      .filter((d) => existsSync(d));
    const platform = new Set<string>();
    for (const lib of libs) for (const f of readdirSync(lib)) if (/^lib\..*\.d\.ts$/.test(f)) for (const n of identifiers(readFileSync(join(lib, f), 'utf8'))) platform.add(n);
    expect(platform.has('bufferedAmountLowThreshold')).toBe(true); // the lib files were read
    expect(INTERNAL_PROPS.filter((n) => platform.has(n))).toEqual([]);
  });

  it('are no member of what users pass or read (the public declarations)', () => {
    const names = publicNames(root);
    expect(names.has('iceServers') && names.has('sendGate') && names.has('onDrain')).toBe(true);
    expect(INTERNAL_PROPS.filter((n) => names.has(n))).toEqual([]);
  });

  it('are no key on the wire (the protocol module)', () => {
    const dir = join(root, 'signaling/protocol');
    const keys = new Set<string>();
    for (const f of readdirSync(dir)) if (f.endsWith('.ts')) for (const m of readFileSync(join(dir, f), 'utf8').matchAll(/([A-Za-z_$][\w$]*)\??\s*:/g)) keys.add(m[1] as string);
    expect(keys.has('relayBytesBurst')).toBe(true);
    expect(INTERNAL_PROPS.filter((n) => keys.has(n))).toEqual([]);
  });
});
