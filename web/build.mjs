// Builds the browser files into dist/web/:
//   rallypoint.min.js  the peer library and signaling client (peer/index.ts), ESM, minified
//   demo.js            the demo game (web/demo/demo.ts); imports ./rallypoint.min.js at run time
//   index.html         the demo page (web/demo/index.html)
// `npm run build` runs it after tsc; `npm start` serves dist/web at /.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { minify } from 'terser';

const root = fileURLToPath(new URL('..', import.meta.url));

/** What every browser file is built with: one minified ES module for current browsers. */
const browserModule = {
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
};

/**
 * Property names that only the library itself reads or writes, which the bundle may shorten
 * (esbuild's `mangleProps`): the members the channel classes share with their subclasses,
 * the hooks and options the library's parts hand each other, fields of internal structs.
 * None may be a name a user passes or reads (an option, a runtime or policy interface, a
 * public member), a key on the wire, or a DOM/ECMAScript member the bundle uses: mangling
 * renames every `.name` in the bundle. test/browser/bundle-mangle.test.ts checks all three.
 */
export const INTERNAL_PROPS = [
  'hooks',
  'fragmentBytes',
  'initiator',
  'reassemblyCap',
  'negotiator',
  'malformed',
  'trySend',
  'newest',
  'deliver',
  'pendingCount',
  'fallbackLink',
  'sendLatest',
  'frag',
  'createConnection',
  'heard',
  'onError',
  'refill',
  'gated',
  'burst',
  'welcomed',
  'gate',
  'polite',
  'acked',
  'dead',
  'handleRelay',
  'handleSignal',
  'connectExisting',
];

/** esbuild options of the library bundle, before terser (see buildLibrary). */
export function libraryOptions(outdir) {
  return {
    ...browserModule,
    entryPoints: { rallypoint: `${root}peer/index.ts` },
    outdir,
    entryNames: '[name].min',
    metafile: true,
    write: false,
    mangleProps: new RegExp(`^(${INTERNAL_PROPS.join('|')})$`),
  };
}

/**
 * Builds rallypoint.min.js (and its source map) into `outdir`: esbuild bundles and minifies,
 * then terser compresses once more (two passes), which saves about 3 % gzipped over esbuild
 * alone: esbuild's minifier works in one pass by design (https://esbuild.github.io/api/#minify).
 * The size budget (test/browser/bundle-size.test.ts) is measured on exactly this file.
 */
export async function buildLibrary(outdir) {
  const result = await build(libraryOptions(outdir));
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  const map = result.outputFiles.find((f) => f.path.endsWith('.js.map'));
  if (!js || !map) throw new Error('esbuild produced no rallypoint.min.js and map');
  const name = basename(js.path);
  const out = await minify(js.text, {
    module: true,
    ecma: 2022,
    compress: { passes: 2 },
    mangle: true,
    format: { comments: false },
    sourceMap: { content: map.text, url: `${name}.map`, filename: name },
  });
  if (out.code === undefined || typeof out.map !== 'string') throw new Error('terser produced no output');
  await mkdir(outdir, { recursive: true });
  await writeFile(js.path, out.code);
  await writeFile(map.path, out.map);
  return { code: out.code, metafile: result.metafile };
}

/**
 * The demo imports the library from `../../peer/index.js` for its types; in the bundle that
 * import becomes `./rallypoint.min.js`, so the page runs the very bundle the budget measures.
 */
const libraryAsExternal = {
  name: 'rallypoint-external',
  setup(b) {
    b.onResolve({ filter: /\/peer\/index\.js$/ }, () => ({ path: './rallypoint.min.js', external: true }));
  },
};

export async function buildWeb({ outdir = `${root}dist/web` } = {}) {
  await mkdir(outdir, { recursive: true });
  const library = await buildLibrary(outdir);
  await build({ ...browserModule, entryPoints: { demo: `${root}web/demo/demo.ts` }, outdir, plugins: [libraryAsExternal] });
  await copyFile(`${root}web/demo/index.html`, `${outdir}/index.html`);
  return { library };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildWeb();
